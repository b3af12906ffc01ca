import { Counter } from '../shared/worker-counters.ts';
import type { WorkerCounters } from '../shared/worker-counters.ts';

/** Buffered bytes that weigh as much as one connection when comparing load. */
const BYTES_PER_CONNECTION = 64 * 1024;

/**
 * LeastLoadedBalancer picks the worker for a new socket from the counters workers keep in
 * shared memory, without asking them: open connections, handshakes in progress, bytes waiting
 * to be written, and sockets sent but not yet adopted (so a burst of accepts does not all land
 * on the worker that looked idle a microsecond ago). Ties go round-robin.
 */
export class LeastLoadedBalancer {
  readonly #counters: WorkerCounters;
  readonly #sent: Float64Array;
  #next = 0;

  constructor(counters: WorkerCounters) {
    this.#counters = counters;
    this.#sent = new Float64Array(counters.workers);
  }

  /** Load of one worker, in connection units. */
  load(worker: number): number {
    const c = this.#counters;
    return (
      c.get(worker, Counter.Connections) +
      c.get(worker, Counter.Handshakes) +
      this.inFlight(worker) +
      c.get(worker, Counter.BufferedBytes) / BYTES_PER_CONNECTION
    );
  }

  /** Sockets sent to `worker` that it has not adopted yet. */
  inFlight(worker: number): number {
    return Math.max(0, this.#sent[worker]! - this.#counters.get(worker, Counter.SocketsAdopted));
  }

  /** The least-loaded worker among those `available`, or -1 when none is. */
  pick(available: (worker: number) => boolean): number {
    const n = this.#counters.workers;
    let best = -1;
    let bestLoad = Infinity;
    for (let i = 0; i < n; i++) {
      const worker = (this.#next + i) % n;
      if (!available(worker)) continue;
      const load = this.load(worker);
      if (load < bestLoad) {
        best = worker;
        bestLoad = load;
      }
    }
    if (best >= 0) this.#next = (best + 1) % n;
    return best;
  }

  sent(worker: number): void {
    this.#sent[worker]!++;
  }

  /** A replacement worker counts adoptions from zero again. */
  reset(worker: number): void {
    this.#sent[worker] = 0;
  }
}
