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
  /**
   * The thread itself, sampled by ThreadSampler (the primary's in the server slot, at the same
   * indexes): event-loop delay over the last completed window, in seconds; CPU and event-loop
   * busy time accumulated over the slot's threads (a replacement worker adds on); the V8 heap.
   */
  LoopDelayMean: 32,
  LoopDelayP50: 33,
  LoopDelayP99: 34,
  LoopDelayMax: 35,
  LoopBusySeconds: 36,
  CpuUserSeconds: 37,
  CpuSystemSeconds: 38,
  HeapUsedBytes: 39,
  HeapTotalBytes: 40,
  /** Histograms (see HISTOGRAMS): bucket counts, then the sum, from each one's `at`. */
  HandshakeSeconds: 44,
  MessageInBytes: 60,
  MessageOutBytes: 76,
} as const;
export type Counter = (typeof Counter)[keyof typeof Counter];

const SLOTS = 96;

/**
 * Histograms kept in the counter slots, one writer each (the worker): per bucket the count of
 * values <= its bound (not cumulative: the reader sums), past the last bound the rest, then the sum.
 */
export interface HistogramLayout {
  readonly at: Counter;
  readonly bounds: readonly number[];
}

/** Upgrade request in to 101 out, seconds. */
export const HANDSHAKE_SECONDS: HistogramLayout = {
  at: Counter.HandshakeSeconds,
  bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
};
/** Message payload sizes, bytes: powers of 4 from 64 B to 16 MiB (recordSize relies on it). */
const SIZE_BOUNDS = Array.from({ length: 10 }, (_, i) => 64 * 4 ** i);
export const MESSAGE_IN_BYTES: HistogramLayout = { at: Counter.MessageInBytes, bounds: SIZE_BOUNDS };
export const MESSAGE_OUT_BYTES: HistogramLayout = { at: Counter.MessageOutBytes, bounds: SIZE_BOUNDS };

/** Counts one value into a histogram (handshakes: not on the message path). */
export function recordValue(slot: Float64Array, histogram: HistogramLayout, value: number): void {
  const { at, bounds } = histogram;
  let bucket = 0;
  while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
  slot[at + bucket]!++;
  slot[at + bounds.length + 1]! += value;
}

/**
 * Counts one message size into MESSAGE_IN_BYTES or MESSAGE_OUT_BYTES, on the message path: the
 * bucket is computed, not searched. Bound i is 2^(6 + 2i), so for size > 64 the bucket is
 * ceil((ceil(log2 size) - 6) / 2), and ceil(log2 size) = 32 - clz32(size - 1).
 */
export function recordSize(slot: Float64Array, at: Counter, size: number): void {
  const bucket = size <= 64 ? 0 : Math.min(SIZE_BOUNDS.length, (27 - Math.clz32(size - 1)) >> 1);
  slot[at + bucket]!++;
  slot[at + SIZE_BOUNDS.length + 1]! += size;
}

/**
 * Counters of the server as a whole, written by the primary in the slot after the workers'.
 * AdmissionLock is no counter: an Int32 lock word in that slot (see reserveWithin).
 */
export const ServerCounter = { Restarts: 0, Refused: 1, AdmissionLock: 2 } as const;
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
  readonly #admission: Int32Array;

  constructor(bufferOrWorkers: SharedArrayBuffer | number) {
    this.buffer =
      typeof bufferOrWorkers === 'number'
        ? new SharedArrayBuffer((bufferOrWorkers + 1) * SLOTS * Float64Array.BYTES_PER_ELEMENT)
        : bufferOrWorkers;
    this.#view = new Float64Array(this.buffer);
    this.workers = this.#view.length / SLOTS - 1;
    this.#admission = new Int32Array(this.buffer, (this.workers * SLOTS + ServerCounter.AdmissionLock) * Float64Array.BYTES_PER_ELEMENT, 1);
  }

  /**
   * Counts a handshake in `slot` if fewer than `max` sockets are open across the workers (`max`
   * 0: no limit, always counted). In SO_REUSEPORT mode every worker accepts at once, and two that
   * each checked, then counted, could both pass at max - 1: here the check and the count happen
   * under one lock word, held for one sum over the slots. Its Atomics order the plain stores: a
   * count made before another worker freed the lock is seen by the worker that takes it next.
   * Closes need no lock (they only lower the sum; a late one refuses a socket that might have
   * fit, never admits one too many).
   */
  reserveWithin(max: number, slot: Float64Array): boolean {
    if (max === 0) {
      slot[Counter.Handshakes]!++;
      return true;
    }
    return this.admitting(max, () => {
      const free = this.openConnections() < max;
      if (free) slot[Counter.Handshakes]!++;
      return free;
    });
  }

  /**
   * Runs `change` under the admission lock where there is a limit (`max` > 0): a handshake that
   * becomes a connection counts as a connection, then stops counting as a handshake, and a worker
   * reserving between the two would count that socket twice and refuse one that fits.
   */
  admitting<T>(max: number, change: () => T): T {
    if (max === 0) return change();
    while (Atomics.compareExchange(this.#admission, 0, 0, 1) !== 0);
    try {
      return change();
    } finally {
      Atomics.store(this.#admission, 0, 0);
    }
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

  /** A histogram of one worker: cumulative bucket counts (the last is +Inf, the count), and the sum. */
  histogram(worker: number, histogram: HistogramLayout): { readonly cumulative: number[]; readonly sum: number } {
    const base = worker * SLOTS + histogram.at;
    const cumulative: number[] = [];
    let total = 0;
    for (let bucket = 0; bucket <= histogram.bounds.length; bucket++) cumulative.push((total += this.#view[base + bucket]!));
    return { cumulative, sum: this.#view[base + histogram.bounds.length + 1]! };
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
