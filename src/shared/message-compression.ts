import type { ProtocolError } from './errors.ts';
import type { MessageInflater } from './message-reader.ts';
import type { PerMessageDeflate, WindowBits } from './permessage-deflate.ts';

/** A negotiated permessage-deflate as a connection (server or client side) uses it. */
export interface MessageCompression {
  readonly inflater: MessageInflater;
  /** Messages below this size go out uncompressed (RFC 7692 §6: compression is per message). */
  readonly threshold: number;
  /**
   * Compresses on this thread; present only when our direction keeps no context. Use it for
   * messages up to `syncLimit` bytes: above that, blocking the event loop costs more than the
   * thread pool's round trip (docs/performance.md).
   */
  readonly compressSync: ((data: Buffer) => Buffer) | null;
  readonly syncLimit: number;
  /**
   * Compresses one piece of a message sent in fragments, on this thread (`fin` on the last);
   * present where compressSync is (PerMessageDeflate.compressFragmentSync). Without it a
   * fragmented message goes out uncompressed (compression is per message, RFC 7692 §6).
   */
  readonly compressFragment: ((data: Buffer, fin: boolean) => Buffer) | null;
  /** Compresses on zlib's thread pool, completing in call order (context takeover). */
  compress(data: Buffer, callback: (error: Error | null, data?: Buffer) => void): void;
  /**
   * Our direction's negotiated window: a message compressed once for many connections without
   * context (a broadcast, PreparedMessage) fits this peer when made with this window or less.
   */
  readonly window: WindowBits;
  /**
   * Such a message went out: where our direction keeps context, the compressor starts over
   * before our next message (PerMessageDeflate.restartDeflate says why).
   */
  afterSharedFrame(): void;
  close(): void;
}

/**
 * Whether a message of `size` bytes goes out compressed: from `threshold` bytes up, unless its
 * sender said no (RFC 7692 §6: compression is decided per message). Server sends, client sends
 * and broadcasts all decide here.
 */
export const compressionWanted = (threshold: number, size: number, compress: boolean | undefined): boolean =>
  compress !== false && size >= threshold;

/**
 * Without on-thread contexts: the largest message compressed on the calling thread, and the
 * largest compressed frame inflated there (one-shot calls; measured: docs/performance.md).
 */
export const SYNC_COMPRESS_LIMIT = 16 * 1024;
export const SYNC_INFLATE_LIMIT = 4 * 1024;

/**
 * Wraps a PerMessageDeflate. With `onThread` codecs (the default wherever Node allows it) every
 * message compresses and every frame inflates synchronously on the calling thread, on zlib
 * contexts kept between messages: measured cheaper in total CPU and on the calling thread than
 * zlib's pool at every size (docs/performance.md). Otherwise small single-frame messages from a
 * peer that keeps no context inflate with Node's one-shot call, and the rest go through the
 * asynchronous, stateful path on zlib's thread pool.
 */
export function messageCompression(codec: PerMessageDeflate): MessageCompression {
  const ourParams = codec.params;
  const common = {
    threshold: codec.threshold,
    compressSync: codec.canCompressSync ? (data: Buffer) => codec.compressSync(data) : null,
    compressFragment: codec.canCompressSync ? (data: Buffer, fin: boolean) => codec.compressFragmentSync(data, fin) : null,
    compress: (data: Buffer, callback: (error: Error | null, data?: Buffer) => void) => codec.compress(data, callback),
    window: codec.role === 'server' ? ourParams.serverMaxWindowBits : ourParams.clientMaxWindowBits,
    afterSharedFrame: () => codec.restartDeflate(),
    close: () => codec.close(),
  };
  if (codec.onThread) {
    const inflater: MessageInflater = {
      synchronous: true,
      decompress(data, fin, callback) {
        let out: Buffer;
        try {
          out = codec.inflateFrame(data, fin);
        } catch (error) {
          callback(error as ProtocolError);
          return;
        }
        callback(null, out);
      },
    };
    return { ...common, inflater, syncLimit: Infinity };
  }
  let fragmented = false;
  const inflater: MessageInflater = {
    synchronous: false,
    decompress(data: Buffer, fin: boolean, callback: (error: ProtocolError | null, data?: Buffer) => void): void {
      if (fin && !fragmented && codec.canDecompressSync && data.length <= SYNC_INFLATE_LIMIT) {
        let out: Buffer;
        try {
          out = codec.decompressSync(data);
        } catch (error) {
          callback(error as ProtocolError);
          return;
        }
        callback(null, out);
        return;
      }
      fragmented = !fin;
      codec.decompress(data, fin, callback);
    },
  };
  return { ...common, inflater, syncLimit: SYNC_COMPRESS_LIMIT };
}
