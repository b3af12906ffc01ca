/**
 * How a socket enters a worker and becomes a connection: sockets from the primary (or, on Node
 * < 26.6, from the worker's own SO_REUSEPORT listener) are admitted against maxHandshakes,
 * wrapped in TLS when configured, timed until their first request, and fed to a non-listening
 * `http.Server`; an upgrade goes through the UpgradeHandler and becomes a Connection, any other
 * request goes to the HTTP endpoints, and a malformed one gets its 4xx here.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { ServerConfig, TlsOptions } from '../shared/config.ts';
import { Counter } from '../shared/worker-counters.ts';
import type { WorkerCounters } from '../shared/worker-counters.ts';
import { refuse } from '../runtime/refuse.ts';
import { Connection, kReads, kStart } from './connection.ts';
import { rehomeForReading } from './socket-rehome.ts';
import type { ConnectionContext } from './connection.ts';
import type { HttpEndpoints } from './http-endpoints.ts';
import { loadSecureContext } from './tls-context.ts';
import type { UpgradeHandler } from './upgrade.ts';

/** The error listener of a socket between its upgrade and its Connection (`this` is the socket). */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

export interface IntakeParts {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly counters: WorkerCounters;
  /** This worker's counter slot. */
  readonly slot: Float64Array;
  readonly upgrade: UpgradeHandler;
  readonly endpoints: HttpEndpoints;
  readonly context: ConnectionContext;
  /** The worker's open connections: the intake adds each new one. */
  readonly connections: Set<Connection>;
}

export class SocketIntake {
  readonly #parts: IntakeParts;
  readonly #server: Server;
  /** Sockets before their first request, with the timer that cuts a silent or slow one off. */
  readonly #handshaking = new Map<Duplex, NodeJS.Timeout>();
  /**
   * One 'close' listener shared by every socket still in its handshake (`this` is the socket),
   * removed once the handshake ends: a per-socket closure would stay on each open connection.
   */
  readonly #onHandshakeSocketClose: (this: Duplex) => void;
  /** A failed TLS handshake (a plain-TCP client, a bad certificate) closes only that socket. */
  readonly #onTlsError: (this: TLSSocket, error: Error) => void;
  #secureContext: SecureContext | null;
  /** The worker's own listener, in SO_REUSEPORT mode only. */
  #listener: NetServer | null = null;
  #stopping = false;

  constructor(parts: IntakeParts) {
    this.#parts = parts;
    const { config, logger } = parts;
    this.#secureContext = config.tls === null ? null : loadSecureContext(config.tls);
    const intake = this;
    this.#onHandshakeSocketClose = function (this: Duplex): void {
      intake.#handshakeEnded(this);
    };
    this.#onTlsError = function (this: TLSSocket, error: Error): void {
      logger.info({ remote: this.remoteAddress, err: error.message }, 'TLS handshake failed; closing the connection');
      this.destroy();
    };
    const timeoutMs = config.handshakeTimeout * 1000;
    this.#server = createServer({
      // Node's own parser enforces these on the upgrade request (slowloris, header floods).
      headersTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      maxHeaderSize: config.maxHeaderSize,
      connectionsCheckingInterval: Math.min(1000, timeoutMs),
      keepAliveTimeout: 5000,
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.#handshakeEnded(req.socket);
      parts.endpoints.handle(req, res);
    });
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(error, socket));
  }

  /** A socket from the primary (or this worker's listener): it enters as if this worker accepted it. */
  adopt(socket: Socket): void {
    const { config, logger, slot } = this.#parts;
    slot[Counter.SocketsAdopted]!++;
    if (this.#stopping) {
      refuse(socket, 503, 'server shutting down');
      return;
    }
    if (slot[Counter.Handshakes]! >= config.maxHandshakes) {
      logger.warn({ remote: socket.remoteAddress }, 'too many handshakes in progress; refusing with 503');
      refuse(socket, 503, 'too many handshakes in progress');
      return;
    }
    slot[Counter.Handshakes]!++;
    let entering: Duplex = socket;
    if (this.#secureContext !== null) {
      const secure = new TLSSocket(socket, { isServer: true, secureContext: this.#secureContext, ALPNProtocols: ['http/1.1'] });
      secure.on('error', this.#onTlsError);
      entering = secure;
    }
    // Node's parser bounds a request once it has started (headersTimeout); this also bounds a
    // client that connects and sends nothing, or stalls in the TLS handshake.
    const timer = setTimeout(() => {
      if (!this.#handshaking.has(entering)) return;
      logger.info({ remote: socket.remoteAddress }, 'handshake timed out; closing the connection');
      entering.destroy();
    }, config.handshakeTimeout * 1000);
    timer.unref();
    this.#handshaking.set(entering, timer);
    entering.on('close', this.#onHandshakeSocketClose);
    this.#server.emit('connection', entering);
  }

  /** Node < 26.6: this worker accepts on the shared port itself (SO_REUSEPORT). */
  async listenReusePort(accept: { readonly port: number; readonly host: string | undefined; readonly backlog: number }): Promise<void> {
    const { config, logger, counters, slot } = this.#parts;
    const listener = createNetServer((socket) => {
      // No primary counts for us: every worker sees every worker's counters.
      const max = config.maxConnections;
      if (max > 0 && counters.openConnections() >= max) {
        slot[Counter.Refused]!++;
        logger.warn({ remote: socket.remoteAddress }, 'server is at maxConnections; refusing with 503');
        refuse(socket, 503, 'server is at maxConnections');
        return;
      }
      this.adopt(socket);
    });
    listener.on('error', (error) => logger.error({ err: error }, 'listener error'));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ port: accept.port, host: accept.host, backlog: accept.backlog, reusePort: true }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.#listener = listener;
  }

  /** New connections get new certificates; open ones keep theirs. */
  reloadTls(tls: TlsOptions | null): void {
    const options = tls ?? this.#parts.config.tls;
    if (options === null) return;
    try {
      this.#secureContext = loadSecureContext(options);
      this.#parts.logger.info('TLS certificates reloaded');
    } catch (error) {
      this.#parts.logger.error({ err: (error as Error).message }, 'TLS reload failed; keeping the previous certificates');
    }
  }

  /** Stops taking sockets: new ones get 503, idle HTTP keep-alive sockets close. */
  stop(): void {
    this.#stopping = true;
    this.#listener?.close();
    this.#server.closeIdleConnections();
  }

  /** Closes whatever HTTP sockets are left (after the grace period). */
  closeAll(): void {
    this.#server.closeAllConnections();
  }

  #handshakeEnded(socket: Duplex): void {
    const timer = this.#handshaking.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    socket.off('close', this.#onHandshakeSocketClose);
    this.#handshaking.delete(socket);
    this.#parts.slot[Counter.Handshakes]!--;
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const parts = this.#parts;
    if (this.#stopping) {
      this.#handshakeEnded(socket);
      refuse(socket, 503, 'server shutting down');
      return;
    }
    // Node's HTTP server stops listening for the socket's errors when it hands it over: until the
    // Connection listens, a reset (say, during an async upgrade handler) only closes it.
    socket.on('error', destroyOnError);
    // The socket counts as a handshake until it counts as a connection: maxConnections and the
    // balancer must see it while an async upgrade handler runs.
    parts.upgrade.handle(req, socket).then(
      (accepted) => {
        if (accepted === null) {
          this.#handshakeEnded(socket);
          return;
        }
        if (socket.destroyed) {
          this.#handshakeEnded(socket);
          accepted.compression?.close();
          return;
        }
        socket.off('error', destroyOnError);
        // A plain TCP connection reads into the worker's one read buffer from here on.
        const rehomed = rehomeForReading(socket as Socket, Connection[kReads]);
        const live: Duplex = rehomed?.socket ?? socket;
        (live as Socket).setNoDelay?.(true);
        const connection = new Connection(live, parts.context, accepted, rehomed === null ? 'data-events' : 'read-buffer');
        parts.connections.add(connection);
        // The connection counts itself when constructed: only then does the handshake stop counting.
        this.#handshakeEnded(socket);
        // The 101 goes out only now: a client that reacts to it (opens another connection, say)
        // finds this one counted once, as a connection, by the primary's maxConnections check.
        live.write(accepted.response, 'latin1');
        connection[kStart](head, rehomed?.pending);
      },
      (error: unknown) => {
        this.#handshakeEnded(socket);
        parts.logger.error({ err: error }, 'upgrade failed');
        socket.destroy();
      },
    );
  }

  #onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    this.#handshakeEnded(socket);
    const code = error.code ?? '';
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.#parts.logger.info({ code, status }, `bad HTTP request: ${error.message}`);
    if (socket.destroyed) return;
    if (code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
}
