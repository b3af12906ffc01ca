/**
 * ZlibContext: one raw deflate or inflate stream of zlib, driven synchronously on the calling
 * thread message by message and kept between messages: reset for a message that starts from an
 * empty window (no context takeover, RFC 7692 §7.1.1), left as is for one that continues the
 * previous (context takeover).
 *
 * Why: Node's one-shot `deflateRawSync`/`inflateRawSync` build and free a zlib stream on every
 * call, and a deflate stream's setup (allocating and clearing ~256 KiB of window and hash state
 * at windowBits 15, memLevel 8) costs about as much as compressing a 4 KiB message; uWebSockets
 * keeps one deflate and one inflate stream per thread for this reason. Node has no public API to
 * run a stream synchronously and keep it: its one-shot functions call the stream handle's
 * `writeSync(flush, in, inOff, inLen, out, outOff, outLen)` in a loop, read the lengths left from
 * the stream's `_writeState`, then close the stream (lib/zlib.js, processChunkSync). This module
 * makes the same calls and does not close. `zlibContextSupported` checks at load time that this
 * Node still has that shape and that a round trip gives `deflateRawSync`'s own bytes; where it
 * does not, `ZlibContext.create` returns null and callers use the one-shot functions
 * (test/zlib-context.test.ts fails on a Node release that changes the shape, so the fallback is
 * never taken silently here).
 */
import { constants, createDeflateRaw, createInflateRaw, deflateRawSync } from 'node:zlib';
import type { DeflateRaw, InflateRaw } from 'node:zlib';

/** The internals of a Node zlib stream that the one-shot functions use. */
interface SyncHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  close(): void;
}
interface StreamInternals {
  readonly _handle: SyncHandle | null;
  /** [bytes of output space left, bytes of input left] after writeSync. */
  readonly _writeState: Uint32Array;
}

export interface ZlibContextOptions {
  readonly windowBits: number;
  readonly level?: number;
  readonly memLevel?: number;
}

/** More output than the caller's limit (an inflation bomb, for a message limit). */
export class OutputLimitError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`output exceeds ${limit} bytes`);
    this.limit = limit;
  }
}

/**
 * Output lands here first, one chunk at a time, then is copied out at its exact size. One per
 * thread: processing never nests and the result is copied before the call returns.
 */
const SCRATCH_SIZE = 64 * 1024;
let scratch: Buffer | null = null;
const EMPTY = Buffer.alloc(0);

/** Output gathered by one process() call: full scratch copies, and the bytes so far. */
interface Output {
  chunks: Buffer[] | null;
  total: number;
  /** Bytes already copied out of the scratch into `chunks`. */
  flushed: number;
}

export class ZlibContext {
  readonly #stream: DeflateRaw | InflateRaw;
  readonly #handle: SyncHandle;
  readonly #state: Uint32Array;
  #ended = false;

  private constructor(stream: DeflateRaw | InflateRaw) {
    const internals = stream as unknown as StreamInternals;
    this.#stream = stream;
    this.#handle = internals._handle!;
    this.#state = internals._writeState;
  }

  /** A deflate or inflate context, or null where this Node cannot drive one synchronously. */
  static create(kind: 'deflate' | 'inflate', options: ZlibContextOptions): ZlibContext | null {
    if (!zlibContextSupported) return null;
    return ZlibContext.#open(kind, options);
  }

  static #open(kind: 'deflate' | 'inflate', options: ZlibContextOptions): ZlibContext {
    // The stream's own output buffer (chunkSize) is never used: output goes to the scratch.
    const chunkSize = constants.Z_MIN_CHUNK;
    const stream =
      kind === 'deflate'
        ? createDeflateRaw({ windowBits: options.windowBits, level: options.level, memLevel: options.memLevel, chunkSize })
        : createInflateRaw({ windowBits: options.windowBits, chunkSize });
    // zlib reports a data error through the stream (it is destroyed, `errored` says why); the
    // caller learns of it from process(), so the event itself goes nowhere.
    stream.on('error', ignore);
    return new ZlibContext(stream);
  }

  /** Whether a zlib error ended this context: make a new one. */
  get failed(): boolean {
    return this.#stream.destroyed;
  }

  /**
   * Runs `input` (then `tail`, if given) through with Z_SYNC_FLUSH and returns everything it
   * produced, a Buffer of its own. Throws OutputLimitError past `limit` bytes of output (having
   * produced at most one scratch chunk more), or zlib's error for corrupt input; either leaves
   * the context unusable until reset() (an OutputLimitError) or at all (a zlib error: `failed`).
   * An inflate stream that reaches its end (a final block) stops there: `ended` says so, and
   * the rest of the input is ignored until reset().
   */
  process(input: Uint8Array, limit = Infinity, tail: Uint8Array | null = null): Buffer {
    // A closed handle must never be written: zlib's C++ side would abort the process.
    if (this.#stream.destroyed) throw this.#stream.errored ?? new Error('zlib context is closed');
    const out = (scratch ??= Buffer.allocUnsafe(SCRATCH_SIZE));
    const sink: Output = { chunks: null, total: 0, flushed: 0 };
    if (!this.#ended) this.#run(input, out, sink, limit);
    if (tail !== null && !this.#ended) this.#run(tail, out, sink, limit);
    const { chunks, total } = sink;
    if (chunks === null) return total === 0 ? EMPTY : copyOf(out, total);
    if (total > sink.flushed) chunks.push(out.subarray(0, total - sink.flushed));
    return Buffer.concat(chunks, total);
  }

  /** Whether an inflate stream reached its end (a block with BFINAL set): reset() before more. */
  get ended(): boolean {
    return this.#ended;
  }

  #run(input: Uint8Array, out: Buffer, sink: Output, limit: number): void {
    const handle = this.#handle;
    const state = this.#state;
    let inOff = 0;
    let inLeft = input.length;
    for (;;) {
      const offset = sink.total - sink.flushed;
      const room = SCRATCH_SIZE - offset;
      handle.writeSync(constants.Z_SYNC_FLUSH, input, inOff, inLeft, out, offset, room);
      if (this.#stream.destroyed) throw this.#stream.errored ?? new Error('zlib stream failed');
      const produced = room - state[0]!;
      const left = state[1]!;
      inOff += inLeft - left;
      inLeft = left;
      sink.total += produced;
      if (sink.total > limit) throw new OutputLimitError(limit);
      if (state[0] === 0) {
        // The scratch filled up: zlib has more to give for the same input.
        (sink.chunks ??= []).push(Buffer.from(out));
        sink.flushed = sink.total;
        continue;
      }
      // Output space left over and input not taken: the stream ended (inflate only).
      if (inLeft > 0) this.#ended = true;
      return;
    }
  }

  /** Starts the next message from an empty window (RFC 7692 §7.1.1, no context takeover). */
  reset(): void {
    this.#ended = false;
    if (!this.#stream.destroyed) this.#handle.reset();
  }

  close(): void {
    this.#stream.destroy();
  }

  /** Whether this Node's zlib streams have the shape the one-shot functions rely on. */
  static probe(): boolean {
    try {
      const sample = Buffer.from('{"probe":"shardws zlib context","n":[1,2,3,1,2,3,1,2,3]}');
      const deflate = ZlibContext.#open('deflate', { windowBits: 15, level: 1, memLevel: 8 });
      const inflate = ZlibContext.#open('inflate', { windowBits: 15 });
      const internals = [deflate, inflate].every((c) => typeof c.#handle.writeSync === 'function' && c.#state instanceof Uint32Array && c.#state.length === 2);
      if (!internals) return false;
      const ours = deflate.process(sample);
      deflate.reset();
      const again = deflate.process(sample);
      const theirs = deflateRawSync(sample, { windowBits: 15, level: 1, memLevel: 8, finishFlush: constants.Z_SYNC_FLUSH });
      const back = inflate.process(ours);
      deflate.close();
      inflate.close();
      return ours.equals(theirs) && again.equals(theirs) && back.equals(sample);
    } catch {
      return false;
    }
  }
}

function ignore(): void {}

function copyOf(source: Buffer, length: number): Buffer {
  const copy = Buffer.allocUnsafe(length);
  source.copy(copy, 0, 0, length);
  return copy;
}

/** Checked once per thread, when this module loads. */
export const zlibContextSupported: boolean = ZlibContext.probe();
