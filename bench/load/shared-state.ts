/**
 * RunState: the one SharedArrayBuffer between the main thread and the client threads. The main
 * thread owns the phase (threads wait for it with Atomics.waitAsync, so no thread blocks);
 * each thread owns its row of live counters (one writer each, plain stores), which the main
 * thread reads for the progress line and to know when every connection is open.
 */

export const Phase = {
  /** Threads open their connections, then count themselves ready. */
  Connecting: 0,
  /** Traffic flows, nothing is recorded. */
  WarmUp: 1,
  Measure: 2,
  /** Stop sending, close every connection, return the results. */
  Stop: 3,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

/** Columns of a thread's counter row. */
export const Live = {
  /** Messages received and verified, in any phase (the progress line's rate, warm-up included). */
  Received: 0,
  /** Wrong messages, protocol errors, failed or lost connections. */
  Errors: 1,
  /** Connections whose handshake completed. */
  Opened: 2,
  /** Connections whose connect or handshake failed. */
  Failed: 3,
  /** Connections open right now. */
  Open: 4,
} as const;
const COLUMNS = 5;

const PHASE = 0;
const READY = 1;
const CONTROL_SLOTS = 2;
/** Byte offset of the counter rows: after the control words, 8-byte aligned for Float64. */
const COUNTERS_AT = 8;

export class RunState {
  readonly buffer: SharedArrayBuffer;
  readonly threads: number;
  readonly #control: Int32Array;
  readonly counters: Float64Array;

  static create(threads: number): RunState {
    return new RunState(new SharedArrayBuffer(COUNTERS_AT + threads * COLUMNS * 8), threads);
  }

  constructor(buffer: SharedArrayBuffer, threads: number) {
    this.buffer = buffer;
    this.threads = threads;
    this.#control = new Int32Array(buffer, 0, CONTROL_SLOTS);
    this.counters = new Float64Array(buffer, COUNTERS_AT, threads * COLUMNS);
  }

  get phase(): Phase {
    return Atomics.load(this.#control, PHASE) as Phase;
  }

  setPhase(phase: Phase): void {
    Atomics.store(this.#control, PHASE, phase);
    Atomics.notify(this.#control, PHASE);
  }

  /** Resolves once the phase is `phase` or later. */
  async reached(phase: Phase): Promise<void> {
    for (;;) {
      const current = Atomics.load(this.#control, PHASE);
      if (current >= phase) return;
      const wait = Atomics.waitAsync(this.#control, PHASE, current);
      if (wait.async) await wait.value;
    }
  }

  markReady(): void {
    Atomics.add(this.#control, READY, 1);
  }

  get ready(): number {
    return Atomics.load(this.#control, READY);
  }

  /** Index of a thread's counter in `counters`. */
  static slot(thread: number, column: number): number {
    return thread * COLUMNS + column;
  }

  /** A column summed over every thread. */
  total(column: number): number {
    let sum = 0;
    for (let t = 0; t < this.threads; t++) sum += this.counters[t * COLUMNS + column]!;
    return sum;
  }
}
