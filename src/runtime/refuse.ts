import { constants } from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { HandshakeStatus } from '../shared/errors.ts';
import { extendedConnectRefusal } from '../shared/extended-connect.ts';
import { buildErrorResponse } from '../shared/handshake.ts';

/** How long a refused socket may linger for the peer to read the answer and close its side. */
export const REFUSE_LINGER_MS = 5000;

const ignoreError = (): void => {};

const { NGHTTP2_NO_ERROR } = constants;

/**
 * Writes an HTTP refusal and closes the socket (the body is in the response already); used by
 * the primary and the workers alike. The peer may answer with a reset instead of reading: that
 * error is expected and goes nowhere (nothing else listens on a refused socket, and an unheard
 * 'error' would take the thread down). What it
 * still sends is read and dropped, so its FIN is seen and the socket closes; one that never
 * closes its side is destroyed after REFUSE_LINGER_MS.
 */
export function refuse(socket: Duplex, status: HandshakeStatus, message?: string, headers?: Readonly<Record<string, string>>): void {
  if (socket.destroyed) return;
  socket.on('error', ignoreError);
  socket.end(buildErrorResponse(status, message, headers), 'latin1');
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), REFUSE_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

/**
 * Refuses an opening handshake made on an HTTP/2 stream (RFC 8441): the status and the message
 * as its body, then END_STREAM and RST_STREAM NO_ERROR. The connection and its other streams go on.
 */
export function refuseStream(stream: ServerHttp2Stream, status: HandshakeStatus, message?: string, headers?: Readonly<Record<string, string>>): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.on('error', ignoreError);
  stream.respond(extendedConnectRefusal(status, headers));
  // RFC 9113 §8.1: with the answer complete, RST_STREAM NO_ERROR tells the client to stop
  // sending; without it a client that keeps its side open holds the stream (and a place under
  // SETTINGS_MAX_CONCURRENT_STREAMS) for as long as it likes.
  stream.end(message ?? '', () => {
    if (!stream.closed) stream.close(NGHTTP2_NO_ERROR);
  });
  stream.resume();
}
