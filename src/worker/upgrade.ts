import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { App, ResponseHeaders, Shard, TlsPeer, UpgradeRequest } from '../shared/app.ts';
import { isProxy, isRejection } from '../shared/app.ts';
import { HandshakeError } from '../shared/errors.ts';
import type { HandshakeStatus } from '../shared/errors.ts';
import { parseExtensionHeader } from '../shared/extension-header.ts';
import { openingResponse, validateExtendedConnect } from '../shared/extended-connect.ts';
import type { OpeningResponse } from '../shared/extended-connect.ts';
import { buildErrorResponse, validateUpgradeRequest } from '../shared/handshake.ts';
import type { UpgradeRequestInfo } from '../shared/handshake.ts';
import { messageCompression } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { PerMessageDeflate, acceptDeflateOffer } from '../shared/permessage-deflate.ts';
import { resolveProxyTarget } from '../shared/proxy-target.ts';
import type { ResolvedProxyTarget } from '../shared/proxy-target.ts';
import { refuse, refuseStream } from '../runtime/refuse.ts';
import { Counter } from '../shared/worker-counters.ts';
import type { ConnectionContext } from './connection.ts';
import type { ProxyGateway } from './proxy-gateway.ts';
import type { Route, RouteTable } from './route-table.ts';

/**
 * An upgrade request as the handler reads it: from Node's HTTP parser (an IncomingMessage), or
 * read by the worker itself (request-head.ts), in which case `raw()` builds the IncomingMessage
 * an app may ask for, on first use.
 */
export interface HandshakeRequest {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string;
  /** Present on a TLS socket. */
  readonly tls: TlsPeer | null;
  /** An extended CONNECT on an HTTP/2 stream (RFC 8441); absent: an HTTP/1.1 upgrade. */
  readonly http2?: boolean;
  raw(): IncomingMessage;
}

/** An IncomingMessage from Node's parser, as a HandshakeRequest. */
export function fromIncomingMessage(req: IncomingMessage): HandshakeRequest {
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    httpVersion: req.httpVersion,
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress ?? '',
    tls: tlsPeer(req.socket),
    raw: () => req,
  };
}

/** The TLS facts of a socket an app may decide on (SNI name, client certificate), or null on plain TCP. */
export function tlsPeer(socket: Duplex): TlsPeer | null {
  if (!('encrypted' in socket)) return null;
  const tls = socket as TLSSocket;
  const certificate = tls.getPeerCertificate(true);
  const error = tls.authorizationError as Error | string | null | undefined;
  return {
    servername: typeof tls.servername === 'string' ? tls.servername : null,
    authorized: tls.authorized,
    authorizationError: error === null || error === undefined ? null : typeof error === 'string' ? error : (error.message ?? String(error)),
    // An empty object when the client sent none.
    peerCertificate: certificate !== null && Object.keys(certificate).length > 0 ? certificate : null,
  };
}

/** A WebSocket connection to make on the socket: served by an app, or relaying to an upstream. */
export interface AcceptedConnection {
  readonly kind: 'connection';
  readonly data: unknown;
  readonly protocol: string;
  readonly extensions: string;
  readonly compression: MessageCompression | null;
  readonly remoteAddress: string;
  /** The 101 (or, over HTTP/2, the :status 200), for the caller to send once it counts the socket as a connection. */
  readonly response: OpeningResponse;
  /** The route's context (its app and limits), or the relay's for a proxied connection. */
  readonly context: ConnectionContext;
  /** Releases what was set up (compression, an upstream) when the client leaves before its 101. */
  abandon(): void;
}

/** A passthrough proxy: after the upstream's 101 (`response`), bytes are copied both ways. */
export interface AcceptedSplice {
  readonly kind: 'splice';
  readonly upstream: Duplex;
  /** Bytes the upstream sent after its 101, read with it. */
  readonly upstreamHead: Buffer;
  readonly response: string;
  readonly remoteAddress: string;
  /** The spliced connection ended. */
  ended(): void;
  abandon(): void;
}

export type AcceptedUpgrade = AcceptedConnection | AcceptedSplice;

/** Drops the header entries an app left undefined. */
function definedHeaders(headers: ResponseHeaders | undefined): Record<string, string> | undefined {
  if (headers === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
  return out;
}

/**
 * UpgradeHandler runs an opening handshake (RFC 6455 §4.2): find the route, validate, check the
 * origin, ask the app, negotiate permessage-deflate, build the 101; or, when the app (or the
 * route) proxies, open the upstream first (proxy-gateway.ts). It returns the accepted
 * connection's parameters and the response to write, or null after refusing it.
 */
export class UpgradeHandler {
  readonly #routes: RouteTable;
  readonly #gateway: ProxyGateway;
  readonly #shard: Shard;
  readonly #logger: Logger;
  readonly #counters: Float64Array;

  constructor(routes: RouteTable, gateway: ProxyGateway, shard: Shard, logger: Logger, counters: Float64Array) {
    this.#routes = routes;
    this.#gateway = gateway;
    this.#shard = shard;
    this.#logger = logger;
    this.#counters = counters;
  }

  /** `dialing` is called when an upstream is dialed: the client waits on the upstream from then on. */
  async handle(req: HandshakeRequest, socket: Duplex, dialing: () => void = () => {}): Promise<AcceptedUpgrade | null> {
    const remoteAddress = req.remoteAddress;
    this.#counters[Counter.HandshakesTotal]!++;
    const refused = (status: HandshakeStatus, reason: string, headers?: Readonly<Record<string, string>>, message?: string): null => {
      this.#counters[Counter.HandshakesRejected]!++;
      this.#logger.info({ remote: remoteAddress, url: req.url, status }, `upgrade refused: ${reason}`);
      if (req.http2 === true) refuseStream(socket as ServerHttp2Stream, status, message ?? reason, headers);
      else refuse(socket, status, message ?? reason, headers);
      return null;
    };

    const route = this.#routes.match(req.url);
    if (route === null) return refused(404, `no route for ${req.url.split('?', 1)[0]!}`, undefined, 'Not Found');
    let info: UpgradeRequestInfo;
    try {
      info = req.http2 === true ? validateExtendedConnect(req.headers) : validateUpgradeRequest(req);
    } catch (error) {
      if (error instanceof HandshakeError) return refused(error.status, error.message, error.headers);
      throw error;
    }
    const origins = route.settings.origins;
    if (origins !== null && (info.origin === undefined || !origins.includes(info.origin))) {
      return refused(403, `origin ${String(info.origin)} is not allowed`);
    }

    let negotiated: { compression: MessageCompression; extensions: string } | null;
    try {
      negotiated = this.#negotiate(route, info);
    } catch (error) {
      if (error instanceof HandshakeError) return refused(error.status, error.message);
      throw error;
    }
    let compression = negotiated?.compression ?? null;
    let extensions = negotiated?.extensions ?? '';

    let data: unknown = undefined;
    let protocol = '';
    let headers: Readonly<Record<string, string>> | undefined;
    let proxy: ResolvedProxyTarget | null = route.proxy;
    // A route's (or the gateway's) target gets the request's path; an app's is dialed as given.
    const forwardPath = proxy !== null;
    let sticky: string | null = proxy?.sticky ?? null;
    const app = route.app;
    let request: UpgradeRequest | null = null;
    if (proxy === null && app.upgrade) {
      request = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        remoteAddress,
        protocols: info.protocols,
        tls: req.tls,
        // Made only if the app reads it: most never do.
        get raw() {
          return req.raw();
        },
      };
      let result;
      try {
        result = await app.upgrade(request, this.#shard);
      } catch (error) {
        compression?.close();
        this.#logger.error({ err: error, url: req.url }, 'app upgrade handler threw; answering 500');
        return refused(500, 'upgrade handler threw', undefined, 'Internal Server Error');
      }
      if (isRejection(result)) {
        compression?.close();
        const rejectHeaders = definedHeaders(result.headers);
        try {
          // A status we cannot answer with, or a header value that is not a field value, is the
          // app's bug: the client still gets an answer (500), never a silently closed socket.
          buildErrorResponse(result.reject, result.message, rejectHeaders);
        } catch (error) {
          this.#logger.error({ err: error, status: result.reject }, 'app upgrade handler rejected with an invalid status or headers; answering 500');
          return refused(500, 'invalid rejection', undefined, 'Internal Server Error');
        }
        return refused(result.reject, `rejected by the app (${result.reject})`, rejectHeaders, result.message);
      }
      if (isProxy(result)) {
        try {
          proxy = resolveProxyTarget(result.proxy, 'the proxy returned by upgrade');
        } catch (error) {
          compression?.close();
          this.#logger.error({ err: error, url: req.url }, 'app upgrade handler returned an invalid proxy target; answering 500');
          return refused(500, 'invalid proxy target', undefined, 'Internal Server Error');
        }
        sticky = proxy.sticky;
      } else if (result) {
        data = result.data;
        headers = definedHeaders(result.headers);
        if (result.protocol !== undefined) {
          if (!info.protocols.includes(result.protocol)) {
            this.#logger.error({ protocol: result.protocol, offered: info.protocols }, 'app chose a subprotocol the client did not offer');
            this.#abort(app, compression, request, data, 'the app chose a subprotocol the client did not offer');
            return refused(500, 'invalid subprotocol choice', undefined, 'Internal Server Error');
          }
          protocol = result.protocol;
        }
      }
    }
    if (socket.destroyed) {
      this.#abort(app, compression, request, data, 'the client went away during the upgrade');
      return null;
    }
    // Bytes spliced to an HTTP/1.1 upstream cannot be an HTTP/2 stream's: its frames would be
    // the client's, its handshake not.
    if (proxy !== null && proxy.mode === 'passthrough' && req.http2 === true) {
      compression?.close();
      return refused(502, 'a passthrough proxy needs the client on HTTP/1.1', undefined, 'Bad Gateway: passthrough proxying needs HTTP/1.1');
    }
    if (proxy !== null && proxy.mode === 'passthrough') {
      // Passthrough negotiates extensions end to end: the client's offer goes to the upstream.
      compression?.close();
      compression = null;
      extensions = '';
    }

    if (proxy !== null) {
      dialing();
      let result;
      try {
        result = await this.#gateway.open(proxy, { request: req, info, route, compression, extensions, headers }, socket, sticky, forwardPath);
      } catch (error) {
        compression?.close();
        throw error;
      }
      if (result === null) {
        compression?.close();
        return null;
      }
      if ('refuse' in result) {
        compression?.close();
        return refused(result.refuse, result.reason, undefined, result.refuse === 504 ? 'Gateway Timeout' : 'Bad Gateway');
      }
      return result;
    }

    let response;
    try {
      response = openingResponse(req.http2 === true, info.key, protocol || undefined, extensions, headers);
    } catch (error) {
      this.#logger.error({ err: error }, 'invalid upgrade response headers from the app');
      this.#abort(app, compression, request, data, 'invalid response headers from the app');
      return refused(500, 'invalid response headers', undefined, 'Internal Server Error');
    }
    return {
      kind: 'connection',
      data,
      protocol,
      extensions,
      compression,
      remoteAddress,
      response,
      context: route.context,
      abandon: () => this.#abort(app, compression, request, data, 'the client went away before the 101'),
    };
  }

  /**
   * An upgrade the app accepted will not open (the client left, or the response could not be
   * made): the codec's memory goes, and the app's `upgradeAborted` releases what `upgrade`
   * allocated for `data` (without it the data would be dropped silently).
   */
  #abort(app: App<unknown>, compression: MessageCompression | null, request: UpgradeRequest | null, data: unknown, reason: string): void {
    compression?.close();
    const handler = app.upgradeAborted;
    if (handler === undefined || request === null) return;
    this.#logger.debug({ url: request.url, reason }, 'upgrade aborted after the app accepted it');
    try {
      handler(request, data, reason);
    } catch (error) {
      this.#logger.error({ err: error }, 'app upgradeAborted handler threw');
    }
  }

  /** permessage-deflate for the client, with the route's settings (RFC 7692 §5), or null. */
  #negotiate(route: Route, info: UpgradeRequestInfo): { compression: MessageCompression; extensions: string } | null {
    const deflate = route.settings.deflate;
    if (deflate === null || info.extensionsHeader === undefined) return null;
    const accepted = acceptDeflateOffer(parseExtensionHeader(info.extensionsHeader), deflate);
    if (accepted === null) return null;
    const codec = new PerMessageDeflate('server', accepted.params, {
      maxMessageSize: route.settings.maxPayloadLength,
      level: deflate.level,
      memLevel: deflate.memLevel,
      threshold: deflate.threshold,
    });
    return { compression: messageCompression(codec), extensions: accepted.response };
  }
}
