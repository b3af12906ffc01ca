import { Socket } from 'node:net';

/** The internals of net.Socket this module touches: the libuv TCP handle it wraps, and the net.Server that accepted it. */
interface HandleHolder {
  _handle: object | null;
  _server?: { _connections?: number } | null;
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
 * With `reads`, the new socket reads into that buffer (net's `onread`) instead of emitting 'data'.
 *
 * If this Node's sockets do not look like that (no `_handle`), the arrived socket is used as is.
 * A socket a net.Server of this thread accepted (a worker's own SO_REUSEPORT listener) moves the
 * same way, for the reads into `reads`; that server counts the object it created until it is
 * destroyed, so the move takes it out of the count (what destroying the handle-less object would
 * do, without its stream teardown: about 6 µs per connection in W5).
 */
export function rehomeSocket(arrived: Socket, reads?: ReadBuffer): Socket {
  const holder = arrived as unknown as HandleHolder;
  const handle = holder._handle;
  if (handle === null || handle === undefined || arrived.destroyed) return arrived;
  // Detach first, so nothing the old object still does (a destroy, say) can reach the handle.
  holder._handle = null;
  const options = { handle, allowHalfOpen: arrived.allowHalfOpen, readable: true, writable: true, ...(reads === undefined ? {} : { onread: reads }) };
  const socket = new Socket(options as ConstructorParameters<typeof Socket>[0]);
  const server = holder._server;
  if (server !== null && server !== undefined && typeof server._connections === 'number') server._connections--;
  return socket;
}

/** net's `onread`: reads land in `buffer`, and `callback` (called with the socket as `this`) gets them. */
export interface ReadBuffer {
  readonly buffer: Buffer;
  callback(this: Socket, bytes: number, buffer: Buffer): boolean;
}

/**
 * Moves an upgraded socket's TCP handle to a fresh `net.Socket` created with `onread`, so every
 * read lands in one reused buffer instead of a Buffer allocated per read (net's documented
 * option; a socket can only be given it when created). Returns the new socket and the bytes the
 * old one had already read and buffered (they come first), or null where it cannot: a TLS
 * socket (its reads come out of the TLS layer) or one without a handle.
 *
 * After the upgrade nothing else holds the socket: Node's HTTP server has let go of it (its
 * parser no longer consumes the handle, `readableFlowing` is null, so what arrived since sits in
 * the readable buffer, which is drained here).
 */
export function rehomeForReading(upgraded: Socket, reads: ReadBuffer): { readonly socket: Socket; readonly pending: readonly Buffer[] } | null {
  const holder = upgraded as unknown as HandleHolder;
  const handle = holder._handle;
  if (handle === null || handle === undefined || upgraded.destroyed || !(upgraded instanceof Socket) || 'encrypted' in upgraded) return null;
  const pending: Buffer[] = [];
  for (let chunk = upgraded.read() as Buffer | null; chunk !== null; chunk = upgraded.read() as Buffer | null) pending.push(chunk);
  holder._handle = null;
  const socket = new Socket({ handle, allowHalfOpen: true, readable: true, writable: true, onread: reads } as ConstructorParameters<typeof Socket>[0]);
  return { socket, pending };
}
