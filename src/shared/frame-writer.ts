import { frameHeaderSize, writeFrameHeader } from './frame-encoder.ts';
import type { MaskKeySource } from './mask.ts';
import { maskInto } from './mask.ts';
import type { Opcode } from './opcodes.ts';

/**
 * ByteArena is a bump allocator for outgoing frame bytes, shared by every connection of one
 * thread (as Node's own Buffer pool is). Bytes are handed out once and never reused: a region
 * given to a socket stays valid until the socket lets go of it, and a full arena is simply
 * replaced, the old one freed by the GC once every socket has written its part.
 */
export class ByteArena {
  readonly #size: number;
  buffer: Buffer;
  position = 0;

  constructor(size = 64 * 1024) {
    this.#size = size;
    this.buffer = Buffer.allocUnsafe(size);
  }

  /** Makes sure `n` contiguous bytes are free at `position`, starting a new block if not. */
  ensure(n: number): void {
    if (this.buffer.length - this.position >= n) return;
    this.buffer = Buffer.allocUnsafe(Math.max(this.#size, n));
    this.position = 0;
  }
}

/** Payloads up to this size are copied next to their header; larger ones are written as-is. */
export const COPY_THRESHOLD = 2048;

/**
 * FrameWriter gathers the frames one connection sends in a tick into as few chunks as
 * possible, for a single `writev`: headers and small payloads are packed contiguously in the
 * thread's ByteArena, large payloads follow as their own chunks without being copied (a
 * server never copies the user's buffer; a client must, to mask it, and puts the header in
 * front of that copy).
 */
export class FrameWriter {
  readonly #arena: ByteArena;
  readonly #maskKeys: MaskKeySource | null;
  #chunks: Buffer[] = [];
  #spare: Buffer[] | null = null;
  #bytes = 0;
  // The open run of bytes in the arena that this writer is extending.
  #runBuffer: Buffer | null = null;
  #runStart = 0;
  #runEnd = 0;

  constructor(arena: ByteArena, maskKeys: MaskKeySource | null) {
    this.#arena = arena;
    this.#maskKeys = maskKeys;
  }

  /** Bytes queued and not yet taken. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  frame(opcode: Opcode, payload: Uint8Array, fin: boolean, rsv1: boolean): void {
    const length = payload.length;
    const masked = this.#maskKeys !== null;
    const headerSize = frameHeaderSize(length, masked);
    const inline = length <= COPY_THRESHOLD;
    if (masked && !inline) {
      // The copy a client makes to mask (RFC 6455 §5.3) carries its header too: a frame sent
      // alone is then one chunk, a write instead of a writev. A copy of its own, not the arena:
      // it dies young, where arena blocks filled this fast live on into old space.
      this.#closeRun();
      const frame = Buffer.allocUnsafe(headerSize + length);
      writeFrameHeader(frame, 0, opcode, fin, rsv1, length, this.#maskKeys);
      maskInto(payload, frame, headerSize - 4, frame, headerSize);
      this.#chunks.push(frame);
      this.#bytes += headerSize + length;
      return;
    }
    const at = this.#reserve(inline ? headerSize + length : headerSize);
    const arena = this.#arena.buffer;
    writeFrameHeader(arena, at, opcode, fin, rsv1, length, this.#maskKeys);
    if (inline) {
      if (masked) maskInto(payload, arena, at + headerSize - 4, arena, at + headerSize);
      else arena.set(payload, at + headerSize);
    } else {
      this.#closeRun();
      this.#chunks.push(Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, length));
    }
    this.#bytes += headerSize + length;
  }

  /** Queues bytes that already form complete frames (a prepared broadcast frame). */
  raw(frames: Buffer): void {
    if (frames.length <= COPY_THRESHOLD) {
      const at = this.#reserve(frames.length);
      this.#arena.buffer.set(frames, at);
    } else {
      this.#closeRun();
      this.#chunks.push(frames);
    }
    this.#bytes += frames.length;
  }

  /** Takes everything queued, in order, or null when nothing is. */
  take(): Buffer[] | null {
    this.#closeRun();
    if (this.#chunks.length === 0) return null;
    const chunks = this.#chunks;
    this.#chunks = this.#spare ?? [];
    this.#spare = null;
    this.#bytes = 0;
    return chunks;
  }

  /**
   * Gives back an array take() returned once its chunks are handed on (written), to be reused:
   * a connection that flushes every turn then allocates no array for it.
   */
  recycle(chunks: Buffer[]): void {
    chunks.length = 0;
    this.#spare = chunks;
  }

  /** Reserves `n` bytes right after this writer's open run, or starts a new run. */
  #reserve(n: number): number {
    const arena = this.#arena;
    arena.ensure(n);
    if (this.#runBuffer !== arena.buffer || this.#runEnd !== arena.position) {
      this.#closeRun();
      this.#runBuffer = arena.buffer;
      this.#runStart = arena.position;
    }
    const at = arena.position;
    arena.position = at + n;
    this.#runEnd = at + n;
    return at;
  }

  #closeRun(): void {
    if (this.#runBuffer !== null && this.#runEnd > this.#runStart) {
      this.#chunks.push(this.#runBuffer.subarray(this.#runStart, this.#runEnd));
    }
    this.#runBuffer = null;
    this.#runStart = this.#runEnd = 0;
  }
}
