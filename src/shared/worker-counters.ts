import type { WorkerStats } from './app.ts';

/**
 * Live counters each worker keeps in one SharedArrayBuffer shared by all threads: the primary
 * balances new sockets on them and serves stats without messaging anyone. Every slot has one
 * writer (its worker), so plain aligned Float64 stores suffice: readers may see a value one
 * update old, never a torn one, and counts stay exact past 2^31 (byte totals).
 */
export const Counter = {
  Connections: 0,
  Handshakes: 1,
  BufferedBytes: 2,
  MessagesIn: 3,
  MessagesOut: 4,
  BytesIn: 5,
  BytesOut: 6,
  BackpressureEvents: 7,
  Drops: 8,
  HandshakesTotal: 9,
  HandshakesRejected: 10,
  ProtocolErrors: 11,
  Heartbeat: 12,
  PublishesOut: 13,
  PublishesIn: 14,
  /** Sockets this worker took from the primary (the primary counts what it sent). */
  SocketsAdopted: 15,
} as const;
export type Counter = (typeof Counter)[keyof typeof Counter];

export const COUNTER_NAMES = Object.keys(Counter) as (keyof typeof Counter)[];
const SLOTS = 16;

export type CounterSnapshot = { -readonly [K in keyof typeof Counter]: number };

export class WorkerCounters {
  readonly buffer: SharedArrayBuffer;
  readonly workers: number;
  readonly #view: Float64Array;

  constructor(bufferOrWorkers: SharedArrayBuffer | number) {
    this.buffer =
      typeof bufferOrWorkers === 'number'
        ? new SharedArrayBuffer(bufferOrWorkers * SLOTS * Float64Array.BYTES_PER_ELEMENT)
        : bufferOrWorkers;
    this.#view = new Float64Array(this.buffer);
    this.workers = this.#view.length / SLOTS;
  }

  /** The counters of one worker, as a view its owner writes through. */
  slot(worker: number): Float64Array {
    return this.#view.subarray(worker * SLOTS, worker * SLOTS + SLOTS);
  }

  get(worker: number, counter: Counter): number {
    return this.#view[worker * SLOTS + counter]!;
  }

  /** A fresh worker starts from zero in its slot (its predecessor's connections are gone). */
  resetGauges(worker: number): void {
    const slot = this.slot(worker);
    slot[Counter.Connections] = 0;
    slot[Counter.Handshakes] = 0;
    slot[Counter.BufferedBytes] = 0;
    slot[Counter.SocketsAdopted] = 0;
    slot[Counter.Heartbeat] = 0;
  }

  snapshot(worker: number): CounterSnapshot {
    const out = {} as CounterSnapshot;
    for (const name of COUNTER_NAMES) out[name] = this.get(worker, Counter[name]);
    return out;
  }

  /** One worker's counters in the shape the app and the stats endpoint show. */
  stats(worker: number): WorkerStats {
    const at = (counter: Counter): number => this.get(worker, counter);
    return {
      worker,
      connections: at(Counter.Connections),
      handshakes: at(Counter.Handshakes),
      bufferedBytes: at(Counter.BufferedBytes),
      messagesIn: at(Counter.MessagesIn),
      messagesOut: at(Counter.MessagesOut),
      bytesIn: at(Counter.BytesIn),
      bytesOut: at(Counter.BytesOut),
      backpressureEvents: at(Counter.BackpressureEvents),
      drops: at(Counter.Drops),
    };
  }

  allStats(): WorkerStats[] {
    return Array.from({ length: this.workers }, (_, worker) => this.stats(worker));
  }
}
