/**
 * How a socket enters a worker and becomes a connection: sockets from the primary (or, on Node
 * < 26.6, from the worker's own SO_REUSEPORT listener) are admitted against maxHandshakes and
 * timed until their first request. A plain TCP socket reads into the worker's one read buffer
 * from the start, and its request head is read here (request-head.ts): a WebSocket upgrade in
 * the common form goes straight to the UpgradeHandler and becomes a Connection on the same
 * socket, with none of Node's HTTP objects made for it; anything else (another request, an
 * unusual or malformed head) is handed, with the bytes read so far, to a non-listening
 * `http.Server`, as every TLS socket is. There an upgrade goes the same way, any other request
 * goes to the HTTP endpoints, and a malformed one gets its 4xx.
 */
import { IncomingMessage, createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ServerConfig, TlsOptions } from '../shared/config.ts';
import { Counter, HANDSHAKE_SECONDS, recordValue } from '../shared/worker-counters.ts';
import type { WorkerCounters } from '../shared/worker-counters.ts';
import { refuse } from '../runtime/refuse.ts';
import { parseProxyHeader } from '../shared/proxy-protocol.ts';
import { headEnd, parseRequestHead } from '../shared/request-head.ts';
import type { RequestHead } from '../shared/request-head.ts';
import { spliceSockets } from './byte-splice.ts';
import type { Splice } from './byte-splice.ts';
import { Connection, kReads, kStart } from './connection.ts';
import { rehomeForReading, rehomeSocket } from './socket-rehome.ts';
import type { ReadBuffer } from './socket-rehome.ts';
import type { ConnectionContext } from './connection.ts';
import type { HttpEndpoints } from './http-endpoints.ts';
import { Http2Intake } from './http2-intake.ts';
import { carryPeerAddress, setPeerAddress } from './peer-address.ts';
import { loadTlsContext, recordPeerVerification } from './tls-context.ts';
import type { TlsServerContext } from './tls-context.ts';
import { fromIncomingMessage } from './upgrade.ts';
import type { AcceptedConnection, AcceptedSplice, AcceptedUpgrade, HandshakeRequest, UpgradeHandler } from './upgrade.ts';

/** The error listener of a socket between its upgrade and its Connection (`this` is the socket). */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** A plain TCP socket before its Connection: where its reads go, set to null once it has one. */
const kHead = Symbol('shardws.head');
/** Reads that go nowhere: after a refusal, what the peer still sends is dropped. */
const DISCARD = 'discard';
/** The head is read and the upgrade runs: later bytes (a client that did not wait) are kept. */
interface Upgrading {
  rest: Buffer;
}
/** With `proxyProtocol`: the PROXY header is read first (bounded, proxy-protocol.ts), then TLS or the head. */
interface Preface {
  preface: Buffer;
  readonly tls: boolean;
}
/** A passthrough connection: its reads go to the upstream. */
interface Spliced {
  readonly splice: Splice;
}
type HeadState = Preface | { bytes: Buffer } | Upgrading | Spliced | typeof DISCARD | null;
type IntakeSocket = Socket & { [kHead]: HeadState };

const EMPTY = Buffer.alloc(0);
/** Bytes kept from a client that sends before its upgrade is answered; reading pauses past it. */
const EARLY_DATA_LIMIT = 16 * 1024;

export interface IntakeParts {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly counters: WorkerCounters;
  /** This worker's counter slot. */
  readonly slot: Float64Array;
  readonly upgrade: UpgradeHandler;
  readonly endpoints: HttpEndpoints;
  /** The worker's open connections: the intake adds each new one. */
  readonly connections: Set<Connection>;
}

export class SocketIntake {
  readonly #parts: IntakeParts;
  readonly #server: Server;
  /** Sockets before their first request, with the timer that cuts a silent or slow one off. */
  /** Sockets in their handshake: the timeout, and when they arrived (for the duration histogram). */
  readonly #handshaking = new Map<Duplex, { readonly timer: NodeJS.Timeout; readonly arrived: number }>();
  /**
   * One 'close' listener shared by every socket still in its handshake (`this` is the socket),
   * removed once the handshake ends: a per-socket closure would stay on each open connection.
   */
  readonly #onHandshakeSocketClose: (this: Duplex) => void;
  /** A failed TLS handshake (a plain-TCP client, a bad certificate) closes only that socket. */
  readonly #onTlsError: (this: TLSSocket, error: Error) => void;
  readonly #reads: ReadBuffer;
  #tls: TlsServerContext | null;
  /** With `http2`: the sessions of TLS sockets that chose h2 by ALPN. */
  readonly #http2: Http2Intake | null;
  /** Passthrough connections: bytes copied between the client and its upstream. */
  readonly #splices = new Set<Splice>();
  /** The worker's own listener, in SO_REUSEPORT mode only. */
  #listener: NetServer | null = null;
  #stopping = false;

  constructor(parts: IntakeParts) {
    this.#parts = parts;
    const { config, logger } = parts;
    this.#tls = config.tls === null ? null : loadTlsContext(config.tls, config.http2);
    this.#http2 = config.http2 ? new Http2Intake(parts) : null;
    const intake = this;
    this.#onHandshakeSocketClose = function (this: Duplex): void {
      intake.#handshakeEnded(this);
    };
    const connectionReads = Connection[kReads];
    // Every plain TCP socket of the worker reads through this: its request head first, then
    // (once it is a Connection) frames.
    this.#reads = {
      buffer: connectionReads.buffer,
      callback(this: Socket, bytes: number, buffer: Buffer): boolean {
        if ((this as IntakeSocket)[kHead] === null) return connectionReads.callback.call(this, bytes, buffer);
        intake.#read(this as IntakeSocket, buffer.subarray(0, bytes));
        return true;
      },
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

  /**
   * A socket from the primary (or this worker's listener): it enters as if this worker accepted it.
   * `counted`: its handshake is already counted (the listener's, reserved against maxConnections).
   */
  adopt(arrived: Socket, counted = false): void {
    const { config, logger, slot } = this.#parts;
    // Counted as a handshake before it stops counting as on its way (the primary reads the two
    // in the other order): a socket is seen twice for a moment, never not at all.
    if (!counted) slot[Counter.Handshakes]!++;
    slot[Counter.SocketsAdopted]!++;
    if (this.#stopping) {
      slot[Counter.Handshakes]!--;
      refuse(arrived, 503, 'server shutting down');
      return;
    }
    if (slot[Counter.Handshakes]! > config.maxHandshakes) {
      slot[Counter.Handshakes]!--;
      logger.warn({ remote: arrived.remoteAddress }, 'too many handshakes in progress; refusing with 503');
      refuse(arrived, 503, 'too many handshakes in progress');
      return;
    }
    // The PROXY header comes before everything, TLS included: read here, then TLS or the head.
    if (this.#tls !== null && !config.proxyProtocol) {
      const secure = this.#wrapTls(rehomeSocket(arrived));
      this.#track(secure);
      this.#serveTls(secure);
      return;
    }
    const socket = rehomeSocket(arrived, this.#reads) as IntakeSocket;
    socket[kHead] = config.proxyProtocol ? { preface: EMPTY, tls: this.#tls !== null } : { bytes: EMPTY };
    socket.on('error', destroyOnError);
    this.#track(socket);
  }

  /** A TLS server socket over `plain`, with the current certificates. */
  #wrapTls(plain: Socket): TLSSocket {
    const tls = this.#tls!;
    const secure = new TLSSocket(plain, { isServer: true, ...tls.socketOptions });
    // A failed TLS handshake (a plain-TCP client, a bad certificate) closes only that socket.
    secure.on('error', this.#onTlsError);
    if (tls.socketOptions.requestCert === true) secure.on('secure', recordPeerVerification);
    carryPeerAddress(plain, secure);
    return secure;
  }

  /**
   * A TLS socket's requests go to Node's HTTP/1.1 server, or, with `http2` and a client that chose
   * h2 by ALPN, to an HTTP/2 session: the choice is known once the TLS handshake is done, before
   * the client's first request is read.
   */
  #serveTls(secure: TLSSocket): void {
    const http2 = this.#http2;
    if (http2 === null) {
      this.#server.emit('connection', secure);
      return;
    }
    secure.once('secure', () => {
      if (secure.alpnProtocol !== 'h2') {
        this.#server.emit('connection', secure);
        return;
      }
      // Its streams count one by one from here (http2-intake.ts).
      this.#handshakeEnded(secure);
      http2.adopt(secure);
    });
  }

  /**
   * Times a socket until its first request, and counts it as a handshake until then: Node's
   * parser bounds a request once it has started (headersTimeout); this also bounds a client that
   * connects and sends nothing, or stalls in the TLS handshake.
   */
  #track(socket: Duplex): void {
    const timer = setTimeout(() => {
      if (!this.#handshaking.has(socket)) return;
      // The address is read (a getpeername call) only when it is logged.
      this.#parts.logger.info({ remote: (socket as Socket).remoteAddress }, 'handshake timed out; closing the connection');
      socket.destroy();
    }, this.#parts.config.handshakeTimeout * 1000);
    timer.unref();
    this.#handshaking.set(socket, { timer, arrived: performance.now() });
    socket.on('close', this.#onHandshakeSocketClose);
  }

  /** One read of a plain TCP socket, in the worker's read buffer (valid only during the call). */
  #read(socket: IntakeSocket, chunk: Buffer): void {
    const state = socket[kHead];
    if (state === DISCARD) return;
    if ('preface' in state!) {
      this.#readPreface(socket, state, chunk);
      return;
    }
    if ('splice' in state!) {
      state.splice.fromClient(chunk);
      return;
    }
    if ('rest' in state!) {
      // A client that did not wait for the 101: keep what it sent, up to a bound. Reading goes on
      // below it, so a peer that resets or closes meanwhile is noticed.
      state.rest = Buffer.concat([state.rest, chunk]);
      if (state.rest.length >= EARLY_DATA_LIMIT) socket.pause();
      return;
    }
    const before = state!.bytes.length;
    const bytes = Buffer.concat([state!.bytes, chunk]);
    state!.bytes = bytes;
    // Only a complete head is parsed; until then, only its end is looked for, in the new bytes.
    const end = headEnd(bytes, before - 3);
    const parsed = end >= 0 || bytes.length > this.#parts.config.maxHeaderSize ? parseRequestHead(bytes) : parseRequestHead(bytes.subarray(0, 4));
    if (parsed.kind === 'incomplete' && bytes.length <= this.#parts.config.maxHeaderSize) return;
    if (parsed.kind === 'upgrade' && end <= this.#parts.config.maxHeaderSize) {
      const upgrading: Upgrading = { rest: bytes.subarray(parsed.length) };
      socket[kHead] = upgrading;
      this.#upgrade(socket, parsed.head, upgrading);
      return;
    }
    this.#toNodeParser(socket, bytes);
  }

  /**
   * The PROXY protocol header, before anything else: the client's address goes on the socket,
   * and what follows is TLS or the request head. A connection that does not start with a valid
   * header is closed at once (proxy-protocol.txt §2): it did not come through the proxy.
   */
  #readPreface(socket: IntakeSocket, state: Preface, chunk: Buffer): void {
    const bytes = Buffer.concat([state.preface, chunk]);
    const parsed = parseProxyHeader(bytes);
    if (parsed.kind === 'incomplete') {
      state.preface = bytes;
      return;
    }
    if (parsed.kind === 'invalid') {
      socket[kHead] = DISCARD;
      this.#parts.slot[Counter.ProtocolErrors]!++;
      this.#parts.logger.warn({ remote: socket.remoteAddress }, `closing a connection without a valid PROXY protocol header: ${parsed.reason}`);
      socket.destroy();
      return;
    }
    if (parsed.source !== null) setPeerAddress(socket, parsed.source);
    const rest = bytes.subarray(parsed.length);
    if (state.tls) {
      const plain = this.#handOver(socket);
      if (plain === null) return;
      if (rest.length > 0) plain.unshift(rest);
      // TLS reads what the socket already holds first (lib/internal/tls/wrap.js, initRead).
      const secure = this.#wrapTls(plain);
      this.#retrack(plain, secure);
      this.#serveTls(secure);
      return;
    }
    socket[kHead] = { bytes: EMPTY };
    if (rest.length > 0) this.#read(socket, rest);
  }

  /**
   * Hands a socket whose head is not ours to read to Node's HTTP server, bytes read so far
   * first: on a fresh Socket over the same handle (one without the read buffer, which the
   * server reads the usual way), tracked in its place.
   */
  #toNodeParser(socket: IntakeSocket, bytes: Buffer): void {
    const plain = this.#handOver(socket);
    if (plain === null) return;
    plain.unshift(bytes);
    this.#server.emit('connection', plain);
  }

  /**
   * Moves an intake socket's handle to a fresh Socket that reads the usual way ('data'), still
   * timed and counted as a handshake; null when it closed meanwhile (it is counted out then).
   */
  #handOver(socket: IntakeSocket): Socket | null {
    socket.pause();
    socket[kHead] = DISCARD;
    const handshake = this.#handshaking.get(socket);
    this.#handshaking.delete(socket);
    socket.off('close', this.#onHandshakeSocketClose);
    socket.off('error', destroyOnError);
    const plain = rehomeSocket(socket);
    if (handshake === undefined || plain === socket) {
      // Closed meanwhile: it was counted out already, or is counted out now.
      if (handshake !== undefined) {
        clearTimeout(handshake.timer);
        this.#parts.slot[Counter.Handshakes]!--;
      }
      socket.destroy();
      return null;
    }
    carryPeerAddress(socket, plain);
    this.#handshaking.set(plain, handshake);
    plain.on('close', this.#onHandshakeSocketClose);
    return plain;
  }

  /** The handshake of `from` goes on as that of `to` (a TLS socket over it). */
  #retrack(from: Duplex, to: Duplex): void {
    const handshake = this.#handshaking.get(from)!;
    this.#handshaking.delete(from);
    from.off('close', this.#onHandshakeSocketClose);
    this.#handshaking.set(to, handshake);
    to.on('close', this.#onHandshakeSocketClose);
  }

  /** A head read here, as a HandshakeRequest; its IncomingMessage is made only if the app asks. */
  #handshakeRequest(socket: Socket, head: RequestHead): HandshakeRequest {
    let raw: IncomingMessage | null = null;
    return {
      method: head.method,
      url: head.url,
      httpVersion: head.httpVersion,
      headers: head.headers,
      remoteAddress: socket.remoteAddress ?? '',
      tls: null,
      raw: () => (raw ??= incomingMessage(socket, head)),
    };
  }

  /** The fast path's upgrade: the Connection reads on the same socket, through the read buffer. */
  #upgrade(socket: IntakeSocket, head: RequestHead, upgrading: Upgrading): void {
    this.#runUpgrade(
      socket,
      this.#handshakeRequest(socket, head),
      (accepted) => {
        if (accepted.kind === 'splice') {
          socket[kHead] = { splice: this.#splice(socket, socket, accepted, 'read-buffer', [upgrading.rest]) };
          socket.resume();
          return;
        }
        const connection = this.#connect(socket, socket, accepted, 'read-buffer');
        socket[kHead] = null;
        connection[kStart](upgrading.rest);
        socket.resume();
      },
      // Refused with a response (or failed): what the peer still sends goes nowhere.
      () => (socket[kHead] = DISCARD),
    );
  }

  /** `accept: 'reuseport'` (and Node < 26.6): this worker accepts on the shared port itself (SO_REUSEPORT). */
  async listenReusePort(accept: { readonly port: number; readonly host: string | undefined; readonly backlog: number }): Promise<void> {
    const { config, logger, counters, slot } = this.#parts;
    const listener = createNetServer((socket) => {
      // No primary counts for us: every worker sees every worker's counters, and takes its
      // place under their shared lock (workers accept at the same moment).
      if (!counters.reserveWithin(config.maxConnections, slot)) {
        slot[Counter.Refused]!++;
        logger.warn({ remote: socket.remoteAddress }, 'server is at maxConnections; refusing with 503');
        refuse(socket, 503, 'server is at maxConnections');
        return;
      }
      this.adopt(socket, true);
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
      this.#tls = loadTlsContext(options, this.#parts.config.http2);
      this.#parts.logger.info('TLS certificates reloaded');
    } catch (error) {
      this.#parts.logger.error({ err: (error as Error).message }, 'TLS reload failed; keeping the previous certificates');
    }
  }

  /** Stops taking sockets: new ones get 503, idle HTTP keep-alive sockets close. */
  stop(): void {
    this.#stopping = true;
    this.#listener?.close();
    this.#http2?.stop();
    this.#server.closeIdleConnections();
  }

  /** Closes whatever HTTP sockets and passthrough connections are left (after the grace period). */
  closeAll(): void {
    this.#server.closeAllConnections();
    this.#http2?.closeAll();
    for (const splice of this.#splices) splice.destroy();
  }

  /** The socket's handshake is over (upgraded, refused, closed); returns when it arrived, or -1. */
  #handshakeEnded(socket: Duplex): number {
    const handshake = this.#handshaking.get(socket);
    if (handshake === undefined) return -1;
    clearTimeout(handshake.timer);
    socket.off('close', this.#onHandshakeSocketClose);
    this.#handshaking.delete(socket);
    this.#parts.slot[Counter.Handshakes]!--;
    return handshake.arrived;
  }

  /** An upgrade from Node's HTTP server (TLS, or a head the fast path left to it). */
  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node's HTTP server stops listening for the socket's errors when it hands it over: until the
    // Connection listens, a reset (say, during an async upgrade handler) only closes it.
    socket.on('error', destroyOnError);
    this.#runUpgrade(
      socket,
      fromIncomingMessage(req),
      (accepted) => {
        if (accepted.kind === 'splice') {
          // A plain TCP socket's handle keeps the read buffer net gave it at intake: it reads
          // through it again, on a socket that knows it (TLS reads come out of the TLS layer).
          const rehomed = rehomeForReading(socket as Socket, this.#reads);
          if (rehomed === null) {
            this.#splice(socket, socket, accepted, 'data-events', [head]);
            return;
          }
          const live = rehomed.socket as IntakeSocket;
          live.on('error', destroyOnError);
          live[kHead] = { splice: this.#splice(live, socket, accepted, 'read-buffer', [head, ...rehomed.pending]) };
          return;
        }
        // A plain TCP connection reads into the worker's one read buffer from here on.
        const rehomed = rehomeForReading(socket as Socket, Connection[kReads]);
        const connection = this.#connect(rehomed?.socket ?? socket, socket, accepted, rehomed === null ? 'data-events' : 'read-buffer');
        connection[kStart](head, rehomed?.pending);
      },
      () => {},
    );
  }

  /**
   * Runs the UpgradeHandler. The socket counts as a handshake until it counts as a connection:
   * maxConnections and the balancer must see it while an async upgrade handler runs.
   */
  #runUpgrade(socket: Duplex, request: HandshakeRequest, accept: (accepted: AcceptedUpgrade) => void, refused: () => void): void {
    if (this.#stopping) {
      refused();
      this.#handshakeEnded(socket);
      refuse(socket, 503, 'server shutting down');
      return;
    }
    // Once an upstream is dialed, the client waits on it, not on itself: the proxy's own
    // timeout (504) ends that wait, not the handshake timer.
    const dialing = (): void => clearTimeout(this.#handshaking.get(socket)?.timer);
    this.#parts.upgrade.handle(request, socket, dialing).then(
      (accepted) => {
        if (accepted === null) {
          refused();
          this.#handshakeEnded(socket);
          return;
        }
        if (socket.destroyed) {
          this.#handshakeEnded(socket);
          accepted.abandon();
          return;
        }
        socket.off('error', destroyOnError);
        accept(accepted);
      },
      (error: unknown) => {
        refused();
        this.#handshakeEnded(socket);
        this.#parts.logger.error({ err: error }, 'upgrade failed');
        socket.destroy();
      },
    );
  }

  /** Makes the Connection on `live` and writes the 101; `tracked` stops counting as a handshake. */
  #connect(live: Duplex, tracked: Duplex, accepted: AcceptedConnection, reads: 'read-buffer' | 'data-events'): Connection {
    const parts = this.#parts;
    (live as Socket).setNoDelay?.(true);
    // The connection counts itself when constructed: only then does the handshake stop counting.
    let arrived = -1;
    const connection = parts.counters.admitting(parts.config.maxConnections, () => {
      const made = new Connection(live, accepted.context, accepted, reads);
      arrived = this.#handshakeEnded(tracked);
      return made;
    });
    parts.connections.add(connection);
    if (arrived >= 0) recordValue(parts.slot, HANDSHAKE_SECONDS, (performance.now() - arrived) / 1000);
    // The 101 goes out only now: a client that reacts to it (opens another connection, say)
    // finds this one counted once, as a connection, by the primary's maxConnections check.
    // (An HTTP/2 stream's :status 200 is sent by http2-intake.ts.)
    if (!accepted.response.http2) live.write(accepted.response.head, 'latin1');
    return connection;
  }

  /**
   * A passthrough connection: the upstream's 101 to the client, then bytes both ways. It counts
   * as a connection (maxConnections, the balancer) until both sockets are closed.
   */
  #splice(live: Duplex, tracked: Duplex, accepted: AcceptedSplice, reads: 'read-buffer' | 'data-events', early: readonly Buffer[]): Splice {
    const { slot, counters, config } = this.#parts;
    counters.admitting(config.maxConnections, () => {
      slot[Counter.Connections]!++;
      this.#handshakeEnded(tracked);
    });
    (live as Socket).setNoDelay?.(true);
    live.write(accepted.response, 'latin1');
    const splice = spliceSockets(live, reads, early, accepted.upstream, accepted.upstreamHead, this.#parts.config.idleTimeout * 1000, () => {
      slot[Counter.Connections]!--;
      this.#splices.delete(splice);
      accepted.ended();
    });
    this.#splices.add(splice);
    return splice;
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

/**
 * The IncomingMessage Node's HTTP server would have made for a head read here, for an app that
 * reads `req.raw` (the request line, the headers, the socket; no body: an upgrade has none).
 */
function incomingMessage(socket: Socket, head: RequestHead): IncomingMessage {
  const req = new IncomingMessage(socket);
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = head.httpVersion;
  req.method = head.method;
  req.url = head.url;
  req.headers = head.headers;
  req.rawHeaders = [...head.rawHeaders];
  req.complete = true;
  req.push(null);
  return req;
}
