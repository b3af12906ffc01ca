/**
 * PreparedMessage is one message framed once for many connections (a broadcast), after
 * gorilla/websocket's PreparedMessage: the plain frame, and the message compressed without
 * context (RFC 7692 §7.1.1) once per window size its subscribers negotiated, each made on first
 * use. A frame compressed without context is valid for any connection whose negotiated server
 * window is at least its own, in every compressor mode: a connection that keeps context
 * restarts its compressor after sending one (MessageCompression.afterSharedFrame), so no
 * subscriber needs a compression of its own.
 */
import { encodeFrame } from './frame-encoder.ts';
import type { MessageCompression } from './message-compression.ts';
import { Opcode } from './opcodes.ts';
import { deflateMessageShared } from './permessage-deflate.ts';
import type { WindowBits } from './permessage-deflate.ts';
import { recordDeflate } from './worker-counters.ts';

/** How a broadcast is compressed: the zlib settings of the server's `deflate` option. */
export interface BroadcastDeflate {
  readonly level: number;
  readonly memLevel: number;
}

export class PreparedMessage {
  readonly opcode: Opcode;
  /** The message's bytes (a view into the plain frame). */
  readonly payload: Buffer;
  /** The whole message as one uncompressed frame. */
  readonly plain: Buffer;
  /** Null: the message goes out uncompressed to everyone (below the threshold, or `compress: false`). */
  readonly #deflate: BroadcastDeflate | null;
  /** The compressed frames made so far, by window bits. */
  readonly #compressed: (Buffer | undefined)[] = [];
  /** A worker's counter slot, for the deflate byte counts. */
  readonly #counters: Float64Array | null;

  private constructor(plain: Buffer, deflate: BroadcastDeflate | null, counters: Float64Array | null) {
    this.plain = plain;
    this.opcode = (plain[0]! & 0x0f) as Opcode;
    this.payload = plain.subarray(headerSize(plain));
    this.#deflate = deflate;
    this.#counters = counters;
  }

  /** Frames `payload` once; with `deflate` it may also go out compressed. */
  static of(opcode: Opcode, payload: Uint8Array, deflate: BroadcastDeflate | null, counters: Float64Array | null = null): PreparedMessage {
    return new PreparedMessage(encodeFrame(opcode, payload), deflate, counters);
  }

  /**
   * A message another worker prepared: its plain frame and, when it is to be compressed, its
   * frame compressed at `bits` (further windows are compressed here when asked for).
   */
  static fromFrames(
    plain: Buffer,
    compressed: Buffer | null,
    bits: WindowBits,
    deflate: BroadcastDeflate | null,
    counters: Float64Array | null = null,
  ): PreparedMessage {
    const message = new PreparedMessage(plain, compressed === null ? null : deflate, counters);
    if (compressed !== null) message.#compressed[bits] = compressed;
    return message;
  }

  get binary(): boolean {
    return this.opcode === Opcode.Binary;
  }

  /** Whether the message goes out compressed to connections that negotiated permessage-deflate. */
  get compressible(): boolean {
    return this.#deflate !== null;
  }

  /**
   * The frame for a connection with `compression` negotiated (null: none): compressed at the
   * connection's window when the message is compressible, else the plain frame.
   */
  frameFor(compression: MessageCompression | null): Buffer {
    if (compression === null || this.#deflate === null) return this.plain;
    return this.compressedAt(compression.window);
  }

  /** The message compressed without context for a peer inflating with a 2^bits window. */
  compressedAt(bits: WindowBits): Buffer {
    const cached = this.#compressed[bits];
    if (cached !== undefined) return cached;
    const deflate = this.#deflate;
    if (deflate === null) throw new Error('this message is not to be compressed');
    const deflated = deflateMessageShared(this.payload, bits, deflate.level, deflate.memLevel);
    if (this.#counters !== null) recordDeflate(this.#counters, this.payload.length, deflated.length);
    const frame = encodeFrame(this.opcode, deflated, { rsv1: true });
    this.#compressed[bits] = frame;
    return frame;
  }
}

/** The header size of an unmasked frame (RFC 6455 §5.2: a 7-, 16- or 64-bit length). */
function headerSize(frame: Buffer): number {
  const length7 = frame[1]! & 0x7f;
  return length7 < 126 ? 2 : length7 === 126 ? 4 : 10;
}
