/**
 * The seam between a WebSocket connection and what carries its bytes. A connection (the server's,
 * the client's) reads, writes and closes through this interface only, and it has two
 * implementations, both Node's own objects, used as they are (no wrapper: nothing is added to the
 * socket's per-read or per-write path):
 *
 * - a socket (`net.Socket`, `tls.TLSSocket`): RFC 6455 over TCP. A plain TCP socket may read
 *   through net's `onread` into the worker's one read buffer instead of 'data' events
 *   (socket-rehome.ts); writes are gathered per turn into one cork/writev (frame-flush.ts).
 * - an HTTP/2 stream (`Http2Stream`): RFC 8441, a WebSocket on one stream of a shared
 *   connection. 'data' events; write() returns false and 'drain' follows as the stream's flow
 *   control window (RFC 9113 §5.2) lets bytes out, so backpressure reaches `send` the same way.
 *   `end()` sends END_STREAM (the FIN of RFC 8441 §5), and a peer's RST_STREAM or the session's
 *   end closes the stream ('close'), which the connection reads as a lost socket (1006).
 */
import type { Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';

/** What a connection calls on its transport. */
export interface FrameTransport {
  readonly destroyed: boolean;
  /** Bytes written and not yet taken by the kernel (a socket) or the flow control window (a stream). */
  readonly writableLength: number;
  /** Frames after the peer's FIN / END_STREAM are still read: the closing handshake ends our side. */
  allowHalfOpen: boolean;
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  write(chunk: string, encoding: BufferEncoding, callback?: (error?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
  /** The orderly end of our side: FIN, or END_STREAM. */
  end(): this;
  /** The abrupt end (see abortTransport). */
  destroy(error?: Error): this;
  pause(): this;
  resume(): this;
  /** 'data' (a Buffer), 'end', 'close', 'drain', 'error'. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Node's own listener type
  on(event: string, listener: (...args: any[]) => void): this;
}

/** RFC 9113 §7 CANCEL: what RFC 8441 §5 has an HTTP/2 stream send where TCP would reset. */
const NGHTTP2_CANCEL = 0x8;

/** Whether a transport is an HTTP/2 stream (the RFC 8441 implementation). */
export function isHttp2Stream(transport: FrameTransport): transport is FrameTransport & Http2Stream {
  return 'rstCode' in transport;
}

/**
 * Ends a transport at once, without a closing handshake: a socket is destroyed; a stream is reset
 * with CANCEL (RFC 8441 §5), which leaves the other WebSockets of its connection alone.
 */
export function abortTransport(transport: FrameTransport): void {
  if (isHttp2Stream(transport) && !transport.closed) transport.close(NGHTTP2_CANCEL);
  else transport.destroy();
}

/** Both implementations satisfy the interface as Node ships them (checked by the compiler). */
export type SocketTransport = Conforms<Socket>;
export type StreamTransport = Conforms<Http2Stream>;
type Conforms<T extends FrameTransport> = T;
