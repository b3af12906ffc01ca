import { Socket } from 'node:net';

/** The one internal of net.Socket this module touches: the libuv TCP handle it wraps. */
interface HandleHolder {
  _handle: object | null;
}

/**
 * Wraps a socket that arrived from the primary (`postMessage({ socket }, [socket])`) in a fresh
 * `net.Socket` on the same TCP handle, exactly as `net.Server` wraps a handle it accepts
 * (`new Socket({ handle })`), and lets the arrived object go.
 *
 * Why: the deserialised socket is rebuilt property by property outside the Socket constructor,
 * and V8 keeps it in dictionary mode (`%HasFastProperties` is false; a socket accepted in the
 * thread is fast). Every stream call on it then looks `_readableState`, `_writableState` and
 * `_handle` up in a hash table, and each connection carries a 1.5 KB property dictionary instead
 * of a ~350 B object with a shared map (heap snapshots of a worker holding 2,000 connections,
 * docs/performance.md). The arrived socket has not read yet, so nothing is lost: the new one
 * owns the handle from here, and starts reading as an accepted socket does.
 *
 * If this Node's sockets do not look like that (no `_handle`), the arrived socket is used as is.
 * Only for sockets that arrived by transfer: one accepted by a net.Server of this thread would
 * stay counted in that server's connections, since the server watches the object it created.
 */
export function rehomeSocket(arrived: Socket): Socket {
  const holder = arrived as unknown as HandleHolder;
  const handle = holder._handle;
  if (handle === null || handle === undefined || arrived.destroyed) return arrived;
  // Detach first, so nothing the old object still does (a destroy, say) can reach the handle.
  holder._handle = null;
  return new Socket({ handle, allowHalfOpen: arrived.allowHalfOpen, readable: true, writable: true } as ConstructorParameters<typeof Socket>[0]);
}
