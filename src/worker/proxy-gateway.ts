/**
 * The upgrade of a proxied connection, after the app (or a proxy route) chose a target: pick an
 * upstream (upstream-pool.ts), open its WebSocket (upstream-dial.ts), trying the next upstream
 * when one cannot be reached, and only then answer the client: with a 101 carrying the
 * subprotocol the upstream chose, or with 502 / 504. The client never gets a 101 for an
 * upstream that did not give one.
 *
 * Message mode negotiates each leg's extensions on its own (the client's with the server's
 * deflate, the upstream's with the target's); passthrough forwards the client's key and offers
 * and relays the upstream's 101 as it came, so the two ends negotiate with each other.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { parseExtensionHeader } from '../shared/extension-header.ts';
import { openingResponse } from '../shared/extended-connect.ts';
import type { OpeningResponse } from '../shared/extended-connect.ts';
import { generateKey } from '../shared/handshake.ts';
import type { UpgradeRequestInfo } from '../shared/handshake.ts';
import { messageCompression } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { PerMessageDeflate, acceptDeflateResponse, buildDeflateOffer } from '../shared/permessage-deflate.ts';
import type { DeflateOfferOptions } from '../shared/permessage-deflate.ts';
import type { ResolvedProxyTarget } from '../shared/proxy-target.ts';
import { parseTokenList } from '../shared/token-list.ts';
import { dialUpstream } from './upstream-dial.ts';
import type { DialResult } from './upstream-dial.ts';
import { ProxyLink } from './proxy-link.ts';
import type { Route } from './route-table.ts';
import type { AcceptedUpgrade, HandshakeRequest } from './upgrade.ts';
import { UpstreamPool } from './upstream-pool.ts';
import type { UpstreamStats } from './upstream-pool.ts';

/** The client's side of a proxied upgrade, as the UpgradeHandler settled it. */
export interface ClientLeg {
  readonly request: HandshakeRequest;
  readonly info: UpgradeRequestInfo;
  readonly route: Route;
  /** Message mode: the client leg's permessage-deflate, negotiated with the server's settings. */
  readonly compression: MessageCompression | null;
  readonly extensions: string;
  /** Extra headers for the client's 101 (the app's). */
  readonly headers: Readonly<Record<string, string>> | undefined;
}

export type GatewayResult = AcceptedUpgrade | { readonly refuse: 502 | 504; readonly reason: string } | null;

/** What our upstream leg offers when the target asks for deflate: no context kept on our side, so it compresses on the worker's shared zlib contexts. */
const UPSTREAM_OFFER: DeflateOfferOptions = { clientMaxWindowBits: true, clientNoContextTakeover: true };

/** Request fields never forwarded: hop-by-hop (RFC 9110 §7.6.1) or set by the proxy's own handshake. */
const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'host', 'content-length', 'sec-websocket-accept',
]);
/** The client's own handshake fields: forwarded in passthrough only (the two ends negotiate). */
const HANDSHAKE_FIELDS = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol']);

export class ProxyGateway {
  readonly #pool = new UpstreamPool();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get upstreams(): UpstreamStats[] {
    return this.#pool.stats();
  }

  /**
   * Opens the upstream leg for `client` and returns the accepted upgrade, a refusal, or null
   * when the client left meanwhile (nothing is left open then).
   */
  async open(target: ResolvedProxyTarget, client: ClientLeg, socket: { readonly destroyed: boolean }, sticky: string | null, forwardPath: boolean): Promise<GatewayResult> {
    const passthrough = target.mode === 'passthrough';
    const { info, request } = client;
    const key = passthrough ? info.key : generateKey();
    const protocols = target.protocols ?? info.protocols;
    const offer = !passthrough && target.deflate ? buildDeflateOffer(UPSTREAM_OFFER) : undefined;
    const deadline = Date.now() + target.timeout * 1000;
    let dialed: DialResult | null = null;
    let url = '';
    for (const candidate of this.#pool.order(target, sticky)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      url = candidate;
      const upstream = new URL(candidate);
      dialed = await dialUpstream({
        url: forwardPath ? upstreamUrl(upstream, request.url) : candidate,
        headers: forwardedHeaders(target, client, upstream, key, protocols, passthrough ? info.extensionsHeader : offer),
        key,
        protocols,
        timeoutMs: remaining,
        tls: target.tls,
      });
      if (dialed.kind === 'open') break;
      this.#logger.warn({ upstream: upstream.host, url: request.url, status: dialed.status }, dialed.reason);
      if (!dialed.unreachable) break;
      const backoff = this.#pool.failed(candidate);
      this.#logger.info({ upstream: upstream.host, backoffMs: backoff }, 'upstream backs off');
      if (dialed.status === 504) break;
    }
    if (dialed === null) return { refuse: 504, reason: 'no upstream answered in time' };
    if (dialed.kind === 'failed') return { refuse: dialed.status, reason: dialed.reason };

    const { socket: upstreamSocket, head, response, info: answer } = dialed;
    if (socket.destroyed) {
      upstreamSocket.destroy();
      return null;
    }
    this.#pool.opened(url);
    let open = true;
    const ended = (): void => {
      if (!open) return;
      open = false;
      this.#pool.closed(url);
    };
    const refuse = (reason: string): GatewayResult => {
      upstreamSocket.destroy();
      ended();
      return { refuse: 502, reason };
    };

    if (passthrough) {
      return {
        kind: 'splice',
        upstream: upstreamSocket,
        upstreamHead: head,
        response: relayedResponse(response.rawHeaders),
        remoteAddress: request.remoteAddress,
        ended,
        abandon: () => {
          upstreamSocket.destroy();
          ended();
        },
      };
    }

    // The subprotocol the client sees is the upstream's choice, so it must be one the client offered.
    if (answer.protocol !== '' && !info.protocols.includes(answer.protocol)) return refuse(`upstream chose subprotocol ${answer.protocol}, which the client did not offer`);
    let upstreamCompression: MessageCompression | null = null;
    if (answer.extensionsHeader !== undefined) {
      if (offer === undefined) return refuse('upstream answered with extensions that were not offered');
      try {
        const params = acceptDeflateResponse(parseExtensionHeader(answer.extensionsHeader), UPSTREAM_OFFER);
        const codec = new PerMessageDeflate('client', params, { maxMessageSize: client.route.settings.maxPayloadLength });
        upstreamCompression = messageCompression(codec);
      } catch (error) {
        return refuse(`upstream answered with invalid extensions: ${(error as Error).message}`);
      }
    }
    let accepted: OpeningResponse;
    try {
      accepted = openingResponse(request.http2 === true, info.key, answer.protocol || undefined, client.extensions, client.headers);
    } catch (error) {
      upstreamCompression?.close();
      return refuse(`invalid response headers: ${(error as Error).message}`);
    }
    const context = client.route.relay;
    const link = new ProxyLink({
      socket: upstreamSocket,
      head,
      compression: upstreamCompression,
      settings: {
        arena: context.arena,
        scheduler: context.scheduler,
        maxPayloadLength: context.maxPayloadLength,
        highWaterMark: context.limits.highWaterMark,
        lowWaterMark: context.lowWaterMark,
        close: context.close,
        logger: context.logger,
      },
      ended,
    });
    return {
      kind: 'connection',
      data: link,
      protocol: answer.protocol,
      extensions: client.extensions,
      compression: client.compression,
      remoteAddress: request.remoteAddress,
      response: accepted,
      context,
      abandon: () => {
        client.compression?.close();
        upstreamCompression?.close();
        link.abandon();
      },
    };
  }
}

/**
 * The upstream request's fields: the client's end-to-end fields, X-Forwarded-For/-Proto/-Host,
 * the target's own headers, then the handshake's (which nothing overrides).
 */
function forwardedHeaders(target: ResolvedProxyTarget, client: ClientLeg, upstream: URL, key: string, protocols: readonly string[], extensions: string | undefined): OutgoingHttpHeaders {
  const received = client.request.headers;
  const out: OutgoingHttpHeaders = {};
  const connection = received.connection;
  const named = connection === undefined ? [] : parseTokenList(Array.isArray(connection) ? connection.join(', ') : connection, 'Connection');
  for (const [name, value] of Object.entries(received)) {
    // Pseudo-headers (an HTTP/2 client's :path, :authority…) are no HTTP/1.1 fields.
    if (value === undefined || name.charCodeAt(0) === 0x3a || NOT_FORWARDED.has(name) || HANDSHAKE_FIELDS.has(name) || named.includes(name)) continue;
    out[name] = value;
  }
  const address = client.request.remoteAddress;
  const prior = received['x-forwarded-for'];
  if (address !== '') out['x-forwarded-for'] = prior === undefined ? address : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${address}`;
  out['x-forwarded-proto'] = client.request.tls !== null ? 'https' : 'http';
  const host = received.host ?? received[':authority'];
  if (host !== undefined) out['x-forwarded-host'] = host;
  out.host = upstream.host;
  for (const [name, value] of Object.entries(target.headers)) out[name.toLowerCase()] = value;
  out.upgrade = 'websocket';
  out.connection = 'Upgrade';
  out['sec-websocket-key'] = key;
  out['sec-websocket-version'] = '13';
  if (protocols.length > 0) out['sec-websocket-protocol'] = protocols.join(', ');
  else delete out['sec-websocket-protocol'];
  if (extensions !== undefined && extensions !== '') out['sec-websocket-extensions'] = extensions;
  else delete out['sec-websocket-extensions'];
  return out;
}

/**
 * A static target's URL with the request's path under it and the request's query (as a path
 * prefix: `ws://up/base` and `/chat?x=1` give `ws://up/base/chat?x=1`), as a reverse proxy
 * passes requests on. An app's own target is dialed as it gave it.
 */
export function upstreamUrl(upstream: URL, requestTarget: string): string {
  const query = requestTarget.indexOf('?');
  const path = query < 0 ? requestTarget : requestTarget.slice(0, query);
  const base = upstream.pathname.endsWith('/') ? upstream.pathname.slice(0, -1) : upstream.pathname;
  const search = query < 0 ? upstream.search : requestTarget.slice(query);
  return `${upstream.protocol}//${upstream.host}${base}${path}${search}`;
}

/** The upstream's 101 as the client gets it in passthrough: its status line and fields as received. */
function relayedResponse(rawHeaders: readonly string[]): string {
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) lines.push(`${rawHeaders[i]!}: ${rawHeaders[i + 1]!}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

