/**
 * PresenceTable counts, per worker, the connections that hold a key (a topic's subscribers, a
 * tag's connections) in one SharedArrayBuffer every thread of a server reads: a count across
 * all workers is a few loads away, with no message and no round trip, and it is exact as soon
 * as the subscribe that changed it has returned (sequentially consistent Atomics).
 *
 * Layout (Int32Array): a header, then `capacity` buckets of [hashA, hashB, count × workers].
 * A key is identified by two independent 32-bit hashes of its kind and text (the table keeps no
 * strings, so it has a fixed size): two keys are mistaken for each other with a chance of about
 * n²/2⁶⁵ for n live keys, 3·10⁻⁸ at a million. hashA = 0 marks a bucket never used; probing is
 * linear from hashA. Each worker writes only its own column, so a crashed worker's counts are
 * removed by zeroing its column (`clearWorker`) and never linger.
 *
 * Which bucket holds a key changes only under the table lock: a worker takes it when its first
 * connection joins a key (find or claim a bucket) and when its last one leaves (so a bucket
 * whose counts are all zero, at the end of a probe run, can become free again). Every other
 * join and leave is one Atomics.add on a bucket the worker already knows, and reads take no lock.
 */

/** The kinds of key: counted apart, as if in separate tables. */
export type PresenceKind = 'topic' | 'tag';

const LOCK = 0;
const CAPACITY = 1;
const WORKERS = 2;
/** Set once a join found the table full: from then on a key's workers are not all known. */
const OVERFLOWED = 3;
const HEADER = 4;

/** Two 32-bit hashes of `kind` and `key` (FNV-1a and a multiply-rotate hash over UTF-16 units); hashA is never 0. */
function hashKey(kind: PresenceKind, key: string): [number, number] {
  let a = kind === 'topic' ? 0x811c9dc5 : 0x050c5d1f;
  let b = kind === 'topic' ? 0x9747b28c : 0x2f1d3a5b;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    a = Math.imul(a ^ unit, 0x01000193);
    b = Math.imul(b ^ unit, 0x5bd1e995);
    b = (b << 13) | (b >>> 19);
  }
  b = Math.imul(b ^ (b >>> 15), 0x85ebca6b);
  b ^= b >>> 13;
  return [a === 0 ? 1 : a, b];
}

export class PresenceTable {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly workers: number;
  readonly #i32: Int32Array;
  readonly #stride: number;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#i32 = new Int32Array(buffer);
    this.capacity = this.#i32[CAPACITY]!;
    this.workers = this.#i32[WORKERS]!;
    this.#stride = 2 + this.workers;
  }

  /** A table for `capacity` keys at once (topics and tags together) and `workers` workers. */
  static create(capacity: number, workers: number): PresenceTable {
    const buffer = new SharedArrayBuffer((HEADER + capacity * (2 + workers)) * Int32Array.BYTES_PER_ELEMENT);
    const i32 = new Int32Array(buffer);
    i32[CAPACITY] = capacity;
    i32[WORKERS] = workers;
    return new PresenceTable(buffer);
  }

  static attach(buffer: SharedArrayBuffer): PresenceTable {
    return new PresenceTable(buffer);
  }

  /** Connections holding `key` on every worker. */
  count(kind: PresenceKind, key: string): number {
    const bucket = this.#find(hashKey(kind, key));
    if (bucket < 0) return 0;
    let total = 0;
    for (let worker = 0; worker < this.workers; worker++) total += Atomics.load(this.#i32, bucket + 2 + worker);
    return total;
  }

  /** Whether some worker could not count a key (the table was full): `workersWith` may then miss some. */
  get overflowed(): boolean {
    return Atomics.load(this.#i32, OVERFLOWED) !== 0;
  }

  /** Workers with at least one connection holding `key`, ascending. */
  workersWith(kind: PresenceKind, key: string): number[] {
    const bucket = this.#find(hashKey(kind, key));
    const out: number[] = [];
    if (bucket < 0) return out;
    for (let worker = 0; worker < this.workers; worker++) if (Atomics.load(this.#i32, bucket + 2 + worker) > 0) out.push(worker);
    return out;
  }

  /**
   * `worker`'s first connection holding `key`: finds or claims its bucket and counts one.
   * Returns the bucket for `adjust` and `leave`, or -1 when the table is full (nothing counted).
   */
  join(worker: number, kind: PresenceKind, key: string): number {
    const [a, b] = hashKey(kind, key);
    const i32 = this.#i32;
    this.#lock(worker);
    try {
      let bucket = this.#find([a, b]);
      if (bucket < 0) {
        bucket = this.#claimable(a);
        if (bucket < 0) {
          Atomics.store(i32, OVERFLOWED, 1);
          return -1;
        }
        Atomics.store(i32, bucket + 1, b);
        Atomics.store(i32, bucket, a);
      }
      Atomics.add(i32, bucket + 2 + worker, 1);
      return bucket;
    } finally {
      this.#unlock();
    }
  }

  /** Another connection of `worker` holds (+1) or let go of (-1) a key it already counts. */
  adjust(worker: number, bucket: number, delta: number): void {
    Atomics.add(this.#i32, bucket + 2 + worker, delta);
  }

  /** `worker`'s last connection holding the key in `bucket` let go: counts it out, frees the bucket when no one holds it. */
  leave(worker: number, bucket: number): void {
    const i32 = this.#i32;
    this.#lock(worker);
    try {
      Atomics.sub(i32, bucket + 2 + worker, 1);
      this.#release(bucket);
    } finally {
      this.#unlock();
    }
  }

  /** A worker is gone: its connections hold nothing, and a lock it died holding is free. */
  clearWorker(worker: number): void {
    const i32 = this.#i32;
    for (let bucket = HEADER; bucket < i32.length; bucket += this.#stride) Atomics.store(i32, bucket + 2 + worker, 0);
    Atomics.compareExchange(i32, LOCK, worker + 1, 0);
    Atomics.notify(i32, LOCK);
  }

  #index(hash: number): number {
    return HEADER + ((hash >>> 0) % this.capacity) * this.#stride;
  }

  #next(bucket: number): number {
    const next = bucket + this.#stride;
    return next >= this.#i32.length ? HEADER : next;
  }

  /** The bucket holding the key, or -1. */
  #find([a, b]: [number, number]): number {
    const i32 = this.#i32;
    let bucket = this.#index(a);
    for (let probes = 0; probes < this.capacity; probes++) {
      const at = Atomics.load(i32, bucket);
      if (at === 0) return -1;
      if (at === a && Atomics.load(i32, bucket + 1) === b) return bucket;
      bucket = this.#next(bucket);
    }
    return -1;
  }

  /** Under the lock: the first bucket on the key's probe run that no one holds (never used, or emptied). */
  #claimable(a: number): number {
    let bucket = this.#index(a);
    for (let probes = 0; probes < this.capacity; probes++) {
      if (Atomics.load(this.#i32, bucket) === 0 || this.#held(bucket) === 0) return bucket;
      bucket = this.#next(bucket);
    }
    return -1;
  }

  #held(bucket: number): number {
    let total = 0;
    for (let worker = 0; worker < this.workers; worker++) total += Atomics.load(this.#i32, bucket + 2 + worker);
    return total;
  }

  /**
   * Under the lock: a bucket no one holds, just before a never-used one, ends no probe run any
   * more, so it becomes never-used too, and so on backwards; keys that churn leave the table as
   * they found it instead of lengthening every later miss.
   */
  #release(bucket: number): void {
    const i32 = this.#i32;
    if (this.#held(bucket) !== 0 || Atomics.load(i32, this.#next(bucket)) !== 0) return;
    for (let probes = 0; probes < this.capacity && Atomics.load(i32, bucket) !== 0 && this.#held(bucket) === 0; probes++) {
      Atomics.store(i32, bucket, 0);
      bucket = bucket === HEADER ? HEADER + (this.capacity - 1) * this.#stride : bucket - this.#stride;
    }
  }

  #lock(worker: number): void {
    const i32 = this.#i32;
    for (;;) {
      const holder = Atomics.compareExchange(i32, LOCK, 0, worker + 1);
      if (holder === 0) return;
      // Held for a few loads and stores: a millisecond's wait is the fallback, rarely reached.
      Atomics.wait(i32, LOCK, holder, 1);
    }
  }

  #unlock(): void {
    Atomics.store(this.#i32, LOCK, 0);
    Atomics.notify(this.#i32, LOCK, 1);
  }
}
