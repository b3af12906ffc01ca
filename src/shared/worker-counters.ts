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
  /** Bytes given to permessage-deflate, and the bytes it produced (the compression ratio). */
  DeflateBytesIn: 16,
  DeflateBytesOut: 17,
  /** Connections closed, by close code (the code exchanged, or 1006 when none was). */
  Closes1000: 18,
  Closes1001: 19,
  Closes1002: 20,
  Closes1003: 21,
  Closes1006: 22,
  Closes1007: 23,
  Closes1008: 24,
  Closes1009: 25,
  Closes1011: 26,
  ClosesOther: 27,
  /** Sockets this worker refused before any request (SO_REUSEPORT mode's maxConnections). */
  Refused: 28,
} as const;
export type Counter = (typeof Counter)[keyof typeof Counter];

const SLOTS = 32;

/** Counters of the server as a whole, written by the primary in the slot after the workers'. */
export const ServerCounter = { Restarts: 0, Refused: 1 } as const;
export type ServerCounter = (typeof ServerCounter)[keyof typeof ServerCounter];

/** The counter for connections closed with `code`. */
export function closeCounter(code: number): Counter {
  switch (code) {
    case 1000: return Counter.Closes1000;
    case 1001: return Counter.Closes1001;
    case 1002: return Counter.Closes1002;
    case 1003: return Counter.Closes1003;
    case 1006: return Counter.Closes1006;
    case 1007: return Counter.Closes1007;
    case 1008: return Counter.Closes1008;
    case 1009: return Counter.Closes1009;
    case 1011: return Counter.Closes1011;
    default: return Counter.ClosesOther;
  }
}

/** Counts one message through permessage-deflate (the compression ratio's two sides). */
export function recordDeflate(counters: Float64Array, input: number, output: number): void {
  counters[Counter.DeflateBytesIn]! += input;
  counters[Counter.DeflateBytesOut]! += output;
}

export class WorkerCounters {
  readonly buffer: SharedArrayBuffer;
  readonly workers: number;
  readonly #view: Float64Array;

  constructor(bufferOrWorkers: SharedArrayBuffer | number) {
    this.buffer =
      typeof bufferOrWorkers === 'number'
        ? new SharedArrayBuffer((bufferOrWorkers + 1) * SLOTS * Float64Array.BYTES_PER_ELEMENT)
        : bufferOrWorkers;
    this.#view = new Float64Array(this.buffer);
    this.workers = this.#view.length / SLOTS - 1;
  }

  /** The server-wide counters (ServerCounter), written by the primary. */
  get server(): Float64Array {
    return this.slot(this.workers);
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

  /** Sockets every worker holds: open connections and handshakes in progress. */
  openConnections(): number {
    let total = 0;
    for (let worker = 0; worker < this.workers; worker++) total += this.get(worker, Counter.Connections) + this.get(worker, Counter.Handshakes);
    return total;
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
