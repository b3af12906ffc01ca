import type { MessageCompression } from './message-compression.ts';
import type { Opcode } from './opcodes.ts';
import { recordDeflate } from './worker-counters.ts';

/** Where framed messages go (a FrameWriter, or the FrameSink that flushes one). */
export interface FrameTarget {
  frame(opcode: Opcode, payload: Uint8Array, fin: boolean, rsv1: boolean): void;
}

/**
 * What a MessageEncoder asks of the connection it encodes for, as one table of functions for
 * every connection of a kind (the encoder passes its owner).
 */
export interface EncoderOps<O> {
  /**
   * Whether a message whose compression finished off-thread may still be framed: not once our
   * close frame is out (RFC 6455 §5.5.1: no data frame follows it).
   */
  acceptsData(owner: O): boolean;
  /** An off-thread compression ended: the message was framed (or discarded), or `error` says why not. */
  compressed(owner: O, error: Error | null): void;
}

/**
 * MessageEncoder is the compress-then-frame step of a connection that negotiated
 * permessage-deflate, the same for the server and the client: a message compresses on the
 * calling thread where the codec allows it (our direction keeps no context, and the message is
 * small enough that blocking costs less than a round trip to zlib's pool), else on the pool;
 * either way it is framed with RSV1 set (RFC 7692 §6) in the order it was sent. While a message
 * is on the pool (`busy`), the owner holds later messages back.
 */
export class MessageEncoder<O> {
  readonly #target: FrameTarget;
  readonly #compression: MessageCompression;
  readonly #ops: EncoderOps<O>;
  readonly #owner: O;
  /** A worker's counter slot, for the deflate byte counts (null on the client). */
  readonly #counters: Float64Array | null;
  #busy = false;

  constructor(target: FrameTarget, compression: MessageCompression, ops: EncoderOps<O>, owner: O, counters: Float64Array | null) {
    this.#target = target;
    this.#compression = compression;
    this.#ops = ops;
    this.#owner = owner;
    this.#counters = counters;
  }

  /** A message is being compressed on zlib's pool. */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * Compresses and frames one message. Returns true when it is framed already; false when it
   * went to zlib's pool, in which case `ops.compressed()` follows. Not while `busy`.
   */
  encode(opcode: Opcode, payload: Buffer): boolean {
    const compression = this.#compression;
    if (compression.compressSync !== null && payload.length <= compression.syncLimit) {
      this.#frame(opcode, payload.length, compression.compressSync(payload));
      return true;
    }
    this.#busy = true;
    compression.compress(payload, (error, compressed) => {
      this.#busy = false;
      if (error || compressed === undefined) {
        this.#ops.compressed(this.#owner, error ?? new Error('compression produced no output'));
        return;
      }
      if (this.#ops.acceptsData(this.#owner)) this.#frame(opcode, payload.length, compressed);
      this.#ops.compressed(this.#owner, null);
    });
    return false;
  }

  #frame(opcode: Opcode, originalLength: number, compressed: Buffer): void {
    if (this.#counters !== null) recordDeflate(this.#counters, originalLength, compressed.length);
    this.#target.frame(opcode, compressed, true, true);
  }
}
