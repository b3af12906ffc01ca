/**
 * A passthrough proxy connection after the upstream's 101: bytes copied both ways as they come
 * (stream pipes, so each side's backpressure stops reading the other), frames and extensions
 * untouched, end to end. A FIN travels on (the closing handshake's TCP close, RFC 6455 §7.1.1),
 * a reset or error on either side ends both, and a connection silent both ways for the idle
 * timeout is cut: with no frames read here, there is no ping to send.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** How long a side whose peer is gone may take to write what it still holds. */
const LINGER_MS = 5000;

export interface Splice {
  /**
   * A read of a client read through a shared buffer (valid only during the call): the caller
   * of a `read-buffer` splice hands each one here.
   */
  fromClient(chunk: Buffer): void;
  /** Ends both sides at once (shutdown). */
  destroy(): void;
}

type HalfOpen = Duplex & { allowHalfOpen: boolean };

/**
 * Joins `client` and `upstream`: `clientEarly` (bytes the client sent before its 101) goes to the
 * upstream first, `upstreamHead` (bytes that came with the upstream's 101) to the client first.
 * A client that reads through the worker's shared buffer (`read-buffer`: net's `onread`, which
 * stays on the handle) is fed by the caller through `fromClient`; one that emits 'data' is piped.
 * `done` runs once, when both sockets are closed.
 */
export function spliceSockets(
  client: Duplex,
  clientReads: 'read-buffer' | 'data-events',
  clientEarly: readonly Buffer[],
  upstream: Duplex,
  upstreamHead: Buffer,
  idleTimeoutMs: number,
  done: () => void,
): Splice {
  // Each direction ends on its own: a FIN from one side must not cut what the other still sends.
  (client as HalfOpen).allowHalfOpen = true;
  (upstream as HalfOpen).allowHalfOpen = true;
  for (const chunk of clientEarly) if (chunk.length > 0) upstream.write(chunk);
  if (upstreamHead.length > 0) client.write(upstreamHead);
  if (clientReads === 'data-events') {
    client.pipe(upstream);
  } else {
    // What pipe() does, for reads that come through fromClient.
    client.on('end', () => upstream.end());
    upstream.on('drain', () => client.resume());
  }
  upstream.pipe(client);

  let open = 2;
  const closed = (): void => {
    if (--open === 0) done();
  };
  const linger = (socket: Duplex): void => {
    if (socket.destroyed) return;
    socket.end();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.once('close', () => {
    linger(upstream);
    closed();
  });
  upstream.once('close', () => {
    linger(client);
    closed();
  });
  if (idleTimeoutMs > 0) {
    // net's timeout counts activity both ways on the client's socket.
    (client as Socket).setTimeout?.(idleTimeoutMs, () => {
      client.destroy();
      upstream.destroy();
    });
  }
  return {
    fromClient(chunk: Buffer): void {
      // The shared buffer is overwritten by the next read: the upstream's write queue gets a copy.
      if (!upstream.write(Buffer.from(chunk))) client.pause();
    },
    destroy: () => {
      client.destroy();
      upstream.destroy();
    },
  };
}
