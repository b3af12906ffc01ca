/**
 * WebSockets over HTTP/2 (RFC 8441): a TLS socket whose client chose `h2` by ALPN becomes one
 * HTTP/2 session (node:http2's, over the worker's TLS socket), which advertises
 * SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3) and at most `http2MaxStreams` concurrent
 * streams. Each extended CONNECT stream (`:protocol: websocket`) goes through the same
 * UpgradeHandler as an HTTP/1.1 upgrade (routes, origin, the app's `upgrade`, deflate, a proxy in
 * message mode) and, answered with `:status 200`, becomes a Connection whose transport is the
 * stream (runtime/frame-transport.ts). Other requests go to the HTTP endpoints (stats, health,
 * metrics, the app's `http`) through node:http2's compatibility request and response.
 *
 * Limits: maxHandshakes and maxConnections count streams as they count sockets (the primary sees
 * sockets only, so the worker checks); a session with no stream for `handshakeTimeout` is closed;
 * on shutdown every session sends GOAWAY (no new streams) while its WebSockets close with 1001.
 */
import { Http2ServerRequest, Http2ServerResponse, performServerHandshake } from 'node:http2';
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Counter, HANDSHAKE_SECONDS, recordValue } from '../shared/worker-counters.ts';
import { abortTransport } from '../runtime/frame-transport.ts';
import { refuseStream } from '../runtime/refuse.ts';
import { Connection, kStart } from './connection.ts';
import type { IntakeParts } from './socket-intake.ts';
import { tlsPeer } from './upgrade.ts';
import type { HandshakeRequest, UpgradeHandler } from './upgrade.ts';

/** What the intake has, the HTTP/2 side uses: the same counters, upgrade handler, endpoints and connections. */
export type Http2Parts = IntakeParts;

/** Open streams of a session, for closing one that carries none. */
const kOpenStreams = Symbol('shardws.openStreams');
type CountedSession = ServerHttp2Session & { [kOpenStreams]: number };

const EMPTY = Buffer.alloc(0);

/** A stream's errors before it has a Connection (a reset during an async upgrade): it closes, nothing else. */
function ignoreStreamError(): void {}

export class Http2Intake {
  readonly #parts: Http2Parts;
  readonly #sessions = new Set<CountedSession>();
  #stopping = false;

  constructor(parts: Http2Parts) {
    this.#parts = parts;
  }

  /** A TLS socket whose handshake chose h2: it becomes a session. */
  adopt(socket: TLSSocket): void {
    const { config, logger } = this.#parts;
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    // tls.Server clears this once a handshake is done (lib/internal/tls/wrap.js,
    // onServerSocketSecure); a TLSSocket made directly keeps it, and node:http2 would then wait
    // for a 'secureConnect' that only client sockets emit.
    (socket as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
    const session = performServerHandshake(socket, {
      settings: {
        // RFC 8441 §3: without it a client may not send :protocol.
        enableConnectProtocol: true,
        maxConcurrentStreams: config.http2MaxStreams,
        // RFC 9113 §6.5.2: the header list a stream may open with, as maxHeaderSize bounds an HTTP/1.1 head.
        maxHeaderListSize: config.maxHeaderSize,
      },
    }) as CountedSession;
    session[kOpenStreams] = 0;
    this.#sessions.add(session);
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => this.#onStream(session, stream, headers, rawHeaders));
    session.on('error', (error: Error) => logger.debug({ remote: socket.remoteAddress, err: error.message }, 'HTTP/2 session error'));
    session.on('close', () => this.#sessions.delete(session));
    // A session that carries nothing for as long as a client has for its handshake is closed.
    // The listener stays (setTimeout's callback would be a `once`), and the timer is started
    // again when the last stream ends (#onStream): it fires once, and a timeout that found
    // streams open is not re-armed by node:http2 until the next read or write.
    session.on('timeout', () => {
      if (session[kOpenStreams] === 0) session.close();
    });
    session.setTimeout(config.handshakeTimeout * 1000);
  }

  /** Shutdown begins: every session sends GOAWAY; its open WebSockets go on until they close. */
  stop(): void {
    this.#stopping = true;
    for (const session of this.#sessions) if (!session.closed) session.close();
  }

  /** Destroys the sessions left after the grace period. */
  closeAll(): void {
    for (const session of this.#sessions) session.destroy();
  }

  #onStream(session: CountedSession, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    session[kOpenStreams]++;
    stream.once('close', () => {
      if (--session[kOpenStreams] === 0 && !session.destroyed) session.setTimeout(this.#parts.config.handshakeTimeout * 1000);
    });
    if (headers[':method'] === 'CONNECT') {
      this.#connect(session, stream, headers, rawHeaders);
      return;
    }
    // node:http2's compatibility objects, made as its own server makes them: an app's `http`
    // handler gets the request/response API it knows.
    const req = new Http2ServerRequest(stream, headers, {}, rawHeaders) as unknown as IncomingMessage;
    const res = new Http2ServerResponse(stream) as unknown as ServerResponse;
    if (this.#stopping) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('server shutting down');
      return;
    }
    this.#parts.endpoints.handle(req, res);
  }

  /** An extended CONNECT: the opening handshake, then a Connection on the stream. */
  #connect(session: CountedSession, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    const { config, logger, counters, slot, upgrade, connections } = this.#parts;
    stream.on('error', ignoreStreamError);
    const socket = session.socket as TLSSocket;
    const remoteAddress = socket.remoteAddress ?? '';
    if (this.#stopping) {
      refuseStream(stream, 503, 'server shutting down');
      return;
    }
    if (slot[Counter.Handshakes]! >= config.maxHandshakes) {
      logger.warn({ remote: remoteAddress }, 'too many handshakes in progress; refusing a stream with 503');
      refuseStream(stream, 503, 'too many handshakes in progress');
      return;
    }
    // The primary counts sockets; the streams of one are counted here, checked and counted under
    // the workers' shared lock (streams may arrive on several workers at once).
    if (!counters.reserveWithin(config.maxConnections, slot)) {
      slot[Counter.Refused]!++;
      logger.warn({ remote: remoteAddress }, 'server is at maxConnections; refusing a stream with 503');
      refuseStream(stream, 503, 'server is at maxConnections');
      return;
    }
    const arrived = performance.now();
    let counted = true;
    const ended = (): void => {
      if (!counted) return;
      counted = false;
      clearTimeout(timer);
      slot[Counter.Handshakes]!--;
    };
    const timer = setTimeout(() => {
      logger.info({ remote: remoteAddress }, 'handshake timed out; resetting the stream');
      ended();
      abortTransport(stream);
    }, config.handshakeTimeout * 1000);
    timer.unref();
    // A client that resets the stream while the upgrade hook runs ends the handshake there.
    stream.once('close', ended);

    let raw: IncomingMessage | null = null;
    const request: HandshakeRequest = {
      method: 'CONNECT',
      url: typeof headers[':path'] === 'string' ? headers[':path'] : '/',
      httpVersion: '2.0',
      headers,
      remoteAddress,
      tls: tlsPeer(socket),
      http2: true,
      raw: () => (raw ??= new Http2ServerRequest(stream, headers, {}, rawHeaders) as unknown as IncomingMessage),
    };
    upgrade.handle(request, stream, () => clearTimeout(timer)).then(
      (accepted) => {
        if (accepted === null || !counted) {
          ended();
          accepted?.abandon();
          return;
        }
        if (stream.destroyed || accepted.kind !== 'connection' || !accepted.response.http2) {
          ended();
          accepted.abandon();
          // The handler refuses passthrough on a stream; a splice here would be its bug.
          if (accepted.kind !== 'connection') refuseStream(stream, 502, 'passthrough proxying needs HTTP/1.1');
          return;
        }
        const connection = new Connection(stream, accepted.context, accepted, 'data-events');
        connections.add(connection);
        ended();
        recordValue(slot, HANDSHAKE_SECONDS, (performance.now() - arrived) / 1000);
        try {
          // Sent before any frame: the connection's writes go out in the next flush at the earliest.
          stream.respond(accepted.response.fields);
        } catch (error) {
          logger.error({ err: error }, 'invalid response headers for an HTTP/2 WebSocket; resetting the stream');
          abortTransport(stream);
          return;
        }
        connection[kStart](EMPTY);
      },
      (error: unknown) => {
        ended();
        logger.error({ err: error }, 'upgrade failed');
        abortTransport(stream);
      },
    );
  }
}
