import { Buffer } from 'node:buffer';

/**
 * SlabPool lets one worker publish a large payload (a pre-built WebSocket frame) once into a
 * SharedArrayBuffer and several other workers write the same bytes to their sockets, so a
 * broadcast costs one copy instead of one structured clone per thread. Only a numeric handle
 * crosses the MessagePort.
 *
 * The pool is bounded and never grows or blocks for room: when it is full `allocate` says so and
 * the caller falls back to copying through postMessage.
 *
 * Every allocation records its holders (the workers it will be handed to) as a bitmask. A holder
 * clears its bit with `Atomics.and` when done: only the party that actually cleared a set bit has
 * released, so a release is exactly-once even when the primary's dead-worker sweep races a late
 * one. Whoever then finds no bit set frees the pages, under the lock and checked again there, so
 * they are freed once. The mask is the whole truth: a worker terminated right after clearing its
 * bit leaves an unheld record, which the sweep frees (a separate reference count, decremented in a
 * second step, could be left behind by such a termination and leak the pages).
 *
 * Allocation, page freeing and the worker liveness table share one small lock in the SAB. A lock
 * rather than lock-free because "is this worker alive with this generation?" and "set its holder
 * bit" must be one step relative to the sweep: otherwise an allocation made just after a sweep
 * could record a dead worker's bit, and nothing would ever clear it. Critical sections are a few
 * dozen word operations; release takes the lock only when it frees.
 *
 * Usage contract for publishers: list yourself among the holders, write `bytes(handle)`, post the
 * handle to the other recorded holders, then release your own reference. Holding a reference
 * while writing is what keeps a concurrent sweep of every receiver from freeing the pages under
 * the writer.
 */

/** A worker slot at a given incarnation; a restarted worker reuses its slot with a new generation. */
export interface Holder {
  readonly worker: number;
  readonly generation: number;
}

export interface SlabPoolOptions {
  /** Bytes per page; allocations are rounded up to whole pages. Multiple of 8. */
  readonly pageSize?: number;
  readonly pageCount?: number;
  /** Number of worker slots (holder bits per allocation). */
  readonly maxWorkers?: number;
}

export interface SlabPoolStats {
  readonly pagesTotal: number;
  readonly pagesFree: number;
  readonly allocations: number;
}

/**
 * Result of `allocate`. On success `holders` are the requested holders actually recorded (alive
 * with that generation, duplicates dropped): send the handle to those and no others.
 * `full`: no contiguous run free right now, copy instead. `too-large`: can never fit.
 * `no-holders`: nobody requested is alive, so nothing was reserved.
 */
export type SlabAllocation =
  | { readonly ok: true; readonly handle: number; readonly holders: readonly Holder[] }
  | { readonly ok: false; readonly reason: 'full' | 'too-large' | 'no-holders' };

export const DEFAULT_PAGE_SIZE = 16 * 1024;
export const DEFAULT_PAGE_COUNT = 1024;
export const DEFAULT_MAX_WORKERS = 64;

const MAGIC = 0x534c4142; // 'SLAB'
const VERSION = 2;

// Header word indices (Int32 words at the start of the SAB).
const H_MAGIC = 0;
const H_VERSION = 1;
const H_PAGE_SIZE = 2;
const H_PAGE_COUNT = 3;
const H_MAX_WORKERS = 4;
const H_LOCK = 5;
const H_PAGES_FREE = 6;
const H_ALLOCATIONS = 7;
const HEADER_WORDS = 16;

// Worker table: two words per slot.
const W_ALIVE = 0;
const W_GENERATION = 1;
const WORKER_WORDS = 2;

// Allocation records, one per page, indexed by the allocation's first page; holder mask words follow.
// LIVE is 1 exactly on the first page of a live allocation.
const R_LIVE = 0;
const R_SEQ = 1;
const R_LENGTH = 2;
const R_PAGES = 3;
// The holder bitmask is the only record of who still holds an allocation: no separate count that
// a thread terminated between clearing its bit and decrementing could leave out of step.
const R_MASK = 4;

const DATA_ALIGN = 64; // cache line: keeps page data off the header's hot lock word
const MAX_PAGE_COUNT = 1 << 21; // handle = seq * pageCount + page must stay a safe integer
const MAX_SEQ = 0x7fffffff;
const MAX_WORKERS_LIMIT = 1024;

// Lock word: 0 when free, else (owner tag << 1) | contended bit. The owner tag lets markDead take
// the lock over from a worker that was terminated inside a critical section.
const SPIN_LIMIT = 64;
const WAIT_MS = 5;

const FULL: SlabAllocation = Object.freeze({ ok: false, reason: 'full' });
const TOO_LARGE: SlabAllocation = Object.freeze({ ok: false, reason: 'too-large' });
const NO_HOLDERS: SlabAllocation = Object.freeze({ ok: false, reason: 'no-holders' });

interface Layout {
  readonly pageSize: number;
  readonly pageCount: number;
  readonly maxWorkers: number;
  readonly holderWords: number;
  readonly workersAt: number;
  readonly bitmapAt: number;
  readonly recordsAt: number;
  readonly recordWords: number;
  readonly dataOffset: number;
  readonly byteLength: number;
}

function layoutFor(pageSize: number, pageCount: number, maxWorkers: number): Layout {
  const holderWords = Math.ceil(maxWorkers / 32);
  const recordWords = R_MASK + holderWords;
  const workersAt = HEADER_WORDS;
  const bitmapAt = workersAt + maxWorkers * WORKER_WORDS;
  const recordsAt = bitmapAt + Math.ceil(pageCount / 32);
  const metaBytes = (recordsAt + pageCount * recordWords) * 4;
  const dataOffset = Math.ceil(metaBytes / DATA_ALIGN) * DATA_ALIGN;
  const byteLength = dataOffset + pageSize * pageCount;
  return { pageSize, pageCount, maxWorkers, holderWords, workersAt, bitmapAt, recordsAt, recordWords, dataOffset, byteLength };
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`SlabPool: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

export class SlabPool {
  readonly buffer: SharedArrayBuffer;
  readonly pageSize: number;
  readonly pageCount: number;
  readonly maxWorkers: number;
  /** Largest payload that can ever be allocated. */
  readonly capacity: number;

  readonly #words: Int32Array;
  readonly #layout: Layout;
  readonly #lockTag: number;

  /** Lays out a new pool; call in the thread that owns the workers (the primary). */
  static create(options: SlabPoolOptions = {}): SlabPool {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    const pageCount = options.pageCount ?? DEFAULT_PAGE_COUNT;
    const maxWorkers = options.maxWorkers ?? DEFAULT_MAX_WORKERS;
    checkInt('pageSize', pageSize, 8, 0x40000000);
    if (pageSize % 8 !== 0) throw new RangeError(`SlabPool: pageSize must be a multiple of 8, got ${pageSize}`);
    checkInt('pageCount', pageCount, 1, MAX_PAGE_COUNT);
    checkInt('maxWorkers', maxWorkers, 1, MAX_WORKERS_LIMIT);
    // Lengths are stored in Int32 words.
    if (pageSize * pageCount > 0x7fffffff) throw new RangeError('SlabPool: pageSize * pageCount must be below 2 GiB');

    const layout = layoutFor(pageSize, pageCount, maxWorkers);
    const buffer = new SharedArrayBuffer(layout.byteLength);
    const words = new Int32Array(buffer, 0, layout.dataOffset / 4);
    words[H_PAGE_SIZE] = pageSize;
    words[H_PAGE_COUNT] = pageCount;
    words[H_MAX_WORKERS] = maxWorkers;
    words[H_PAGES_FREE] = pageCount;
    words[H_VERSION] = VERSION;
    // Published last so a half-initialised buffer never passes attach's check.
    Atomics.store(words, H_MAGIC, MAGIC);
    return new SlabPool(buffer, layout, maxWorkers + 1);
  }

  /**
   * Opens a pool created elsewhere. `worker` is the slot this thread runs as: it tags the lock so
   * markDead can recover it if this thread is terminated while holding it.
   */
  static attach(buffer: SharedArrayBuffer, options: { readonly worker?: number } = {}): SlabPool {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_WORDS * 4) {
      throw new TypeError('SlabPool.attach: expected the SharedArrayBuffer of a SlabPool');
    }
    const header = new Int32Array(buffer, 0, HEADER_WORDS);
    if (Atomics.load(header, H_MAGIC) !== MAGIC || header[H_VERSION] !== VERSION) {
      throw new TypeError('SlabPool.attach: buffer does not hold a SlabPool of this version');
    }
    const layout = layoutFor(header[H_PAGE_SIZE]!, header[H_PAGE_COUNT]!, header[H_MAX_WORKERS]!);
    if (layout.byteLength !== buffer.byteLength) throw new TypeError('SlabPool.attach: buffer size does not match its header');
    let tag = layout.maxWorkers + 2; // anonymous: never taken over
    if (options.worker !== undefined) {
      checkInt('worker', options.worker, 0, layout.maxWorkers - 1);
      tag = options.worker;
    }
    return new SlabPool(buffer, layout, tag);
  }

  private constructor(buffer: SharedArrayBuffer, layout: Layout, ownerSlot: number) {
    this.buffer = buffer;
    this.#layout = layout;
    this.#words = new Int32Array(buffer, 0, layout.dataOffset / 4);
    this.#lockTag = (ownerSlot + 1) << 1;
    this.pageSize = layout.pageSize;
    this.pageCount = layout.pageCount;
    this.maxWorkers = layout.maxWorkers;
    this.capacity = layout.pageSize * layout.pageCount;
  }

  /**
   * Reserves the first run of free pages that fits `length` bytes (at least one page) and records
   * the holders that are alive with exactly the given generation. With no such holder nothing is
   * reserved (`no-holders`): an allocation nobody will release would leak.
   */
  allocate(length: number, holders: readonly Holder[]): SlabAllocation {
    checkInt('length', length, 0, 0x7fffffff);
    if (length > this.capacity) return TOO_LARGE;
    const L = this.#layout;
    for (const h of holders) {
      checkInt('holder worker', h.worker, 0, L.maxWorkers - 1);
      checkInt('holder generation', h.generation, -0x80000000, 0x7fffffff);
    }
    const pages = length === 0 ? 1 : Math.ceil(length / L.pageSize);
    const w = this.#words;

    this.#lock(-1);
    try {
      // Liveness first: with nobody to send to, "no-holders" is the answer even when full.
      let alive = 0;
      for (const h of holders) if (this.#isAliveAs(h.worker, h.generation)) alive++;
      if (alive === 0) return NO_HOLDERS;

      const start = this.#findRun(pages);
      if (start < 0) return FULL;

      const rec = L.recordsAt + start * L.recordWords;
      for (let i = 0; i < L.holderWords; i++) Atomics.store(w, rec + R_MASK + i, 0);
      // Built only when some holder is dropped (dead, other generation, duplicate); else `holders` is returned as is.
      let recorded: Holder[] | null = null;
      for (let i = 0; i < holders.length; i++) {
        const h = holders[i]!;
        const at = rec + R_MASK + (h.worker >>> 5);
        const bit = 1 << (h.worker & 31);
        // A duplicate is dropped: each worker releases once, so it holds one reference.
        if (!this.#isAliveAs(h.worker, h.generation) || (w[at]! & bit) !== 0) {
          recorded ??= holders.slice(0, i);
          continue;
        }
        Atomics.store(w, at, w[at]! | bit);
        recorded?.push(h);
      }
      const seq = (w[rec + R_SEQ]! % MAX_SEQ) + 1;
      Atomics.store(w, rec + R_SEQ, seq);
      Atomics.store(w, rec + R_LENGTH, length);
      Atomics.store(w, rec + R_PAGES, pages);
      // LIVE before the bitmap: a takeover after a crash rebuilds the bitmap from LIVE records.
      Atomics.store(w, rec + R_LIVE, 1);
      this.#markPages(start, pages, true);
      Atomics.sub(w, H_PAGES_FREE, pages);
      Atomics.add(w, H_ALLOCATIONS, 1);
      return { ok: true, handle: seq * L.pageCount + start, holders: recorded ?? holders };
    } finally {
      this.#unlock();
    }
  }

  /** A Buffer over the allocation's bytes in the SAB: written by the publisher, read by holders. */
  bytes(handle: number): Buffer {
    const rec = this.#liveRecord(handle);
    const L = this.#layout;
    const start = handle % L.pageCount;
    return Buffer.from(this.buffer, L.dataOffset + start * L.pageSize, Atomics.load(this.#words, rec + R_LENGTH));
  }

  length(handle: number): number {
    return Atomics.load(this.#words, this.#liveRecord(handle) + R_LENGTH);
  }

  /**
   * Drops `worker`'s reference. Returns false if it held none (already released, or swept after
   * it died): that path never decrements, which is what keeps a late release from freeing pages
   * another holder is still writing to a socket.
   */
  release(handle: number, worker: number): boolean {
    const L = this.#layout;
    checkInt('worker', worker, 0, L.maxWorkers - 1);
    if (!Number.isSafeInteger(handle) || handle < L.pageCount) return false;
    const start = handle % L.pageCount;
    const seq = (handle - start) / L.pageCount;
    const w = this.#words;
    const rec = L.recordsAt + start * L.recordWords;
    if (Atomics.load(w, rec + R_LIVE) !== 1 || Atomics.load(w, rec + R_SEQ) !== seq) return false;
    const bit = 1 << (worker & 31);
    // One atomic step drops the reference. Whoever then sees every holder bit clear frees the
    // pages under the lock (two releasers may both see it; #freeIfUnheld frees once). If this
    // thread is terminated after the step, markDead's sweep frees the unheld record instead.
    if ((Atomics.and(w, rec + R_MASK + (worker >>> 5), ~bit) & bit) === 0) return false;
    if (this.#unheld(rec)) {
      this.#lock(-1);
      try {
        this.#freeIfUnheld(start, seq);
      } finally {
        this.#unlock();
      }
    }
    return true;
  }

  /**
   * Marks `worker`'s slot alive at `generation`; allocations may record it from now on. A slot
   * that was still alive under another generation (restart without markDead) is swept first.
   */
  markAlive(worker: number, generation: number): void {
    checkInt('worker', worker, 0, this.maxWorkers - 1);
    checkInt('generation', generation, -0x80000000, 0x7fffffff);
    const slot = this.#layout.workersAt + worker * WORKER_WORDS;
    const w = this.#words;
    this.#lock(-1);
    try {
      if (w[slot + W_ALIVE] === 1 && w[slot + W_GENERATION] === generation) return;
      if (w[slot + W_ALIVE] === 1) this.#sweepLocked(worker);
      w[slot + W_GENERATION] = generation;
      w[slot + W_ALIVE] = 1;
    } finally {
      this.#unlock();
    }
  }

  /**
   * Marks `worker` dead and releases every reference it holds, so a worker that dies mid-broadcast
   * never leaks pages. Call only once the worker has exited (its 'exit' event): if it was
   * terminated holding the lock, the lock is taken over and the page bitmap rebuilt from the
   * allocation records. Returns the number of references released.
   */
  markDead(worker: number): number {
    checkInt('worker', worker, 0, this.maxWorkers - 1);
    const slot = this.#layout.workersAt + worker * WORKER_WORDS;
    const tookOver = this.#lock(worker);
    try {
      if (tookOver) this.#rebuildLocked();
      this.#words[slot + W_ALIVE] = 0;
      return this.#sweepLocked(worker);
    } finally {
      this.#unlock();
    }
  }

  /** Counters for metrics and tests; each is exact, the three together are not one snapshot. */
  stats(): SlabPoolStats {
    const w = this.#words;
    return {
      pagesTotal: this.pageCount,
      pagesFree: Atomics.load(w, H_PAGES_FREE),
      allocations: Atomics.load(w, H_ALLOCATIONS),
    };
  }

  #isAliveAs(worker: number, generation: number): boolean {
    const slot = this.#layout.workersAt + worker * WORKER_WORDS;
    return this.#words[slot + W_ALIVE] === 1 && this.#words[slot + W_GENERATION] === generation;
  }

  /** Whether no holder bit of the record at `rec` is set. */
  #unheld(rec: number): boolean {
    const w = this.#words;
    for (let i = 0; i < this.#layout.holderWords; i++) if (Atomics.load(w, rec + R_MASK + i) !== 0) return false;
    return true;
  }

  #liveRecord(handle: number): number {
    const L = this.#layout;
    if (Number.isSafeInteger(handle) && handle >= L.pageCount) {
      const start = handle % L.pageCount;
      const rec = L.recordsAt + start * L.recordWords;
      if (Atomics.load(this.#words, rec + R_LIVE) === 1 && Atomics.load(this.#words, rec + R_SEQ) === (handle - start) / L.pageCount) {
        return rec;
      }
    }
    throw new RangeError(`SlabPool: handle ${handle} is not a live allocation`);
  }

  /** First fit over the page bitmap (bit set = page in use); -1 if no run of `pages` is free. */
  #findRun(pages: number): number {
    const L = this.#layout;
    const w = this.#words;
    let run = 0;
    let start = 0;
    for (let p = 0; p < L.pageCount; ) {
      const word = w[L.bitmapAt + (p >>> 5)]!;
      if ((p & 31) === 0 && p + 32 <= L.pageCount && (word === -1 || word === 0)) {
        if (word === -1) {
          run = 0;
        } else {
          if (run === 0) start = p;
          run += 32;
          if (run >= pages) return start;
        }
        p += 32;
        continue;
      }
      if ((word & (1 << (p & 31))) !== 0) {
        run = 0;
      } else {
        if (run === 0) start = p;
        if (++run >= pages) return start;
      }
      p++;
    }
    return -1;
  }

  #markPages(start: number, pages: number, used: boolean): void {
    const at = this.#layout.bitmapAt;
    const w = this.#words;
    for (let p = start; p < start + pages; p++) {
      const bit = 1 << (p & 31);
      if (used) w[at + (p >>> 5)]! |= bit;
      else w[at + (p >>> 5)]! &= ~bit;
    }
  }

  /**
   * Frees the allocation at `start` if it is still the one with `seq` and nobody holds it. The seq
   * check makes the free exactly-once when a sweep already freed an orphaned record.
   */
  #freeIfUnheld(start: number, seq: number): boolean {
    const L = this.#layout;
    const w = this.#words;
    const rec = L.recordsAt + start * L.recordWords;
    if (w[rec + R_LIVE] !== 1 || w[rec + R_SEQ] !== seq || !this.#unheld(rec)) return false;
    const pages = w[rec + R_PAGES]!;
    Atomics.store(w, rec + R_LIVE, 0);
    this.#markPages(start, pages, false);
    Atomics.add(w, H_PAGES_FREE, pages);
    Atomics.sub(w, H_ALLOCATIONS, 1);
    return true;
  }

  /**
   * Clears `worker`'s bit on every live allocation, freeing those it was the last holder of. Also
   * frees records nobody holds any more: their last releaser may have died before it got the
   * lock to free them.
   */
  #sweepLocked(worker: number): number {
    const w = this.#words;
    const word = worker >>> 5;
    const bit = 1 << (worker & 31);
    let released = 0;
    this.#eachLive((start, rec) => {
      if ((Atomics.and(w, rec + R_MASK + word, ~bit) & bit) !== 0) released++;
      this.#freeIfUnheld(start, w[rec + R_SEQ]!);
    });
    return released;
  }

  /**
   * Visits every live allocation in page order: its first page, its record's word index and its
   * page count (read before `visit`, which may free it). Only under the lock.
   */
  #eachLive(visit: (start: number, rec: number, pages: number) => void): void {
    const L = this.#layout;
    const w = this.#words;
    for (let p = 0; p < L.pageCount; ) {
      const rec = L.recordsAt + p * L.recordWords;
      if (w[rec + R_LIVE] !== 1) {
        p++;
        continue;
      }
      const pages = w[rec + R_PAGES]!;
      visit(p, rec, pages);
      p += pages;
    }
  }

  /** Recomputes bitmap and counters from the LIVE records after taking the lock from a dead owner. */
  #rebuildLocked(): void {
    const L = this.#layout;
    const w = this.#words;
    w.fill(0, L.bitmapAt, L.bitmapAt + Math.ceil(L.pageCount / 32));
    let used = 0;
    let allocations = 0;
    this.#eachLive((start, _rec, pages) => {
      this.#markPages(start, pages, true);
      used += pages;
      allocations++;
    });
    Atomics.store(w, H_PAGES_FREE, L.pageCount - used);
    Atomics.store(w, H_ALLOCATIONS, allocations);
  }

  /**
   * Futex-style mutex (free / held / held with waiters). Returns true if the lock was taken over
   * from `deadWorker`, which the caller guarantees has exited.
   */
  #lock(deadWorker: number): boolean {
    const w = this.#words;
    const mine = this.#lockTag;
    let v = Atomics.compareExchange(w, H_LOCK, 0, mine);
    if (v === 0) return false;
    const deadTag = deadWorker >= 0 ? (deadWorker + 1) << 1 : -1;
    for (let spins = 0; ; spins++) {
      if ((v & ~1) === deadTag) {
        // Keep the waiters bit so our unlock still wakes them.
        const seen = Atomics.compareExchange(w, H_LOCK, v, mine | (v & 1));
        if (seen === v) return true;
        v = seen;
        continue;
      }
      if (v === 0) {
        // Once we have contended, take it with the waiters bit set: others may be asleep.
        v = Atomics.compareExchange(w, H_LOCK, 0, spins < SPIN_LIMIT ? mine : mine | 1);
        if (v === 0) return false;
        continue;
      }
      if (spins < SPIN_LIMIT) {
        v = Atomics.load(w, H_LOCK);
        continue;
      }
      if ((v & 1) === 0) {
        const seen = Atomics.compareExchange(w, H_LOCK, v, v | 1);
        if (seen !== v) {
          v = seen;
          continue;
        }
      }
      // Timed so a waiter still recovers if a notify is ever missed around a takeover.
      Atomics.wait(w, H_LOCK, v | 1, WAIT_MS);
      v = Atomics.load(w, H_LOCK);
    }
  }

  #unlock(): void {
    if ((Atomics.exchange(this.#words, H_LOCK, 0) & 1) !== 0) Atomics.notify(this.#words, H_LOCK, 1);
  }
}
