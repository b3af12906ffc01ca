/**
 * Listening on a Unix domain socket (`listen({ path })`, `--unix PATH`). Node transfers only TCP
 * handles between threads (lib/net.js, assertTransferableSocket), and a listening descriptor
 * shared by the workers would be closed for all of them by the first worker to stop. So the
 * primary accepts on the path and joins each Unix connection to a loopback TCP connection of its
 * own to its own TCP listener (127.0.0.1, an ephemeral port): that accepted TCP socket is
 * transferred to a worker like any other, and the primary copies bytes between the two.
 *
 * The loopback listener takes only the connections the relay itself opened (matched by port);
 * anything else that connects to it is closed. What this costs: the primary copies every byte
 * of Unix-socket connections (docs/operations.md, "Unix domain sockets").
 */
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';

/** How long a loopback connection may wait for its Unix side to be matched. */
const MATCH_TIMEOUT_MS = 2000;

interface Pending {
  readonly client: Socket;
  readonly relay: Socket;
}

export class UnixRelay {
  readonly #path: string;
  readonly #logger: Logger;
  readonly #server: Server;
  /** Loopback connections we opened, by their local port, waiting for the listener to accept them. */
  readonly #opened = new Map<number, Pending>();
  /** Loopback connections accepted before their opener saw 'connect', by remote port. */
  readonly #accepted = new Map<number, { readonly socket: Socket; readonly adopt: (socket: Socket) => void; readonly timer: NodeJS.Timeout }>();
  readonly #live = new Set<Socket>();
  #loopbackPort = 0;

  constructor(path: string, logger: Logger) {
    this.#path = path;
    this.#logger = logger;
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => this.#onClient(client));
    this.#server.on('error', (error) => logger.error({ err: error }, 'Unix socket listener error'));
  }

  /** Listens on the path; connections go to the loopback listener on `loopbackPort`. */
  async listen(loopbackPort: number, backlog: number): Promise<void> {
    this.#loopbackPort = loopbackPort;
    await removeStaleSocket(this.#path);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ path: this.#path, backlog }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /**
   * The loopback listener accepted `socket`: when the relay opened it, `adopt` (the transfer to
   * a worker) runs and the copying starts; a connection from anyone else is closed.
   */
  accepted(socket: Socket, adopt: (socket: Socket) => void): void {
    const port = socket.remotePort ?? -1;
    const pending = this.#opened.get(port);
    if (pending !== undefined) {
      this.#opened.delete(port);
      this.#join(pending, socket, adopt);
      return;
    }
    // Our 'connect' may not have run yet: nothing flows before the match, so it can wait.
    const timer = setTimeout(() => {
      this.#accepted.delete(port);
      this.#logger.warn({ port }, 'closing a loopback connection that did not come from the Unix socket relay');
      socket.destroy();
    }, MATCH_TIMEOUT_MS);
    timer.unref();
    this.#accepted.set(port, { socket, adopt, timer });
  }

  #onClient(client: Socket): void {
    client.on('error', () => {});
    // Counted from the start, not from the match: close() must also end one still being joined.
    this.#live.add(client);
    client.once('close', () => this.#live.delete(client));
    const relay = connect({ port: this.#loopbackPort, host: '127.0.0.1', allowHalfOpen: true });
    relay.on('error', () => client.destroy());
    client.once('close', () => relay.destroy());
    relay.once('connect', () => {
      const port = relay.localPort!;
      const early = this.#accepted.get(port);
      if (early === undefined) {
        const pending = { client, relay };
        this.#opened.set(port, pending);
        // Only our own entry: once matched, the port may belong to a newer connection.
        relay.once('close', () => {
          if (this.#opened.get(port) === pending) this.#opened.delete(port);
        });
        return;
      }
      this.#accepted.delete(port);
      clearTimeout(early.timer);
      this.#join({ client, relay }, early.socket, early.adopt);
    });
  }

  #join({ client, relay }: Pending, accepted: Socket, adopt: (socket: Socket) => void): void {
    // The worker must get the socket before anything is written to its other end.
    adopt(accepted);
    relay.setNoDelay(true);
    client.pipe(relay);
    relay.pipe(client);
    client.on('error', () => relay.destroy());
    relay.on('error', () => client.destroy());
    // The worker's side is gone (a FIN already travelled on through the pipe): nothing more comes.
    relay.once('close', () => client.end());
    client.resume();
  }

  /** Stops accepting on the path (Node removes the file); relayed connections go on. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  /** Stops accepting and ends every relayed connection still open. */
  close(): void {
    for (const { socket, timer } of this.#accepted.values()) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.#accepted.clear();
    for (const { client, relay } of this.#opened.values()) {
      client.destroy();
      relay.destroy();
    }
    this.#opened.clear();
    this.stopAccepting();
    for (const client of this.#live) client.destroy();
  }
}

/**
 * A socket file left by a server that is gone (it did not close, or crashed) would make listen
 * fail with EADDRINUSE: remove it when nothing answers on it. Anything else at the path stays.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) return;
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!answered) unlinkSync(path);
}
