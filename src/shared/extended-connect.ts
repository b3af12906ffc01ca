/**
 * The opening handshake over HTTP/2 (RFC 8441): an extended CONNECT with `:protocol: websocket`
 * on a stream, answered by `:status 200`; from then on the stream carries the frames. Both sides,
 * as pure functions over header objects shaped like node:http2's (lowercase names, pseudo-headers
 * starting with ":"), beside their HTTP/1.1 counterparts in handshake.ts, so the worker, the
 * client and the load generator share them.
 *
 * RFC 8441 §5: no Sec-WebSocket-Key or -Accept (the :protocol pseudo-header does their job);
 * Origin, Sec-WebSocket-Version, -Protocol and -Extensions mean what RFC 6455 says they mean.
 */
import { HandshakeError } from './errors.ts';
import type { HandshakeStatus } from './errors.ts';
import {
  RESERVED_IN_REQUEST,
  assertFieldValue,
  assertRequestTarget,
  buildUpgradeResponse,
  clientFailure,
  eachHeader,
  joined,
  selectedByServer,
  single,
} from './handshake.ts';
import type { OutgoingHeaders, ReceivedHeaders, UpgradeRequestInfo, UpgradeRequestOptions, UpgradeResponseInfo } from './handshake.ts';
import { parseSubprotocolHeader } from './subprotocol-header.ts';
import { isToken } from './token-list.ts';

/** Header fields of an HTTP/2 message as node:http2 takes them. */
export type Http2Fields = Record<string, string | number>;

/**
 * RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2 (node:http2 throws on
 * them), so neither side may add them; nor may anyone override the handshake's own.
 */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];
const RESERVED_IN_CONNECT_RESPONSE: ReadonlySet<string> = new Set([...CONNECTION_SPECIFIC, 'sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions', 'content-length']);
const RESERVED_IN_CONNECT_REQUEST: ReadonlySet<string> = new Set([...RESERVED_IN_REQUEST, ...CONNECTION_SPECIFIC]);

/** RFC 6455 §4.4 via RFC 8441 §5: a version we do not speak gets 426 naming ours (no Upgrade field: RFC 9113 §8.2.2). */
const VERSION_REQUIRED: Readonly<Record<string, string>> = Object.freeze({ 'sec-websocket-version': '13' });

/**
 * validateExtendedConnect checks a CONNECT stream's headers (RFC 8441 §4, §5) and returns what it
 * offers, or throws HandshakeError with the status to refuse it with:
 * - 400 for a CONNECT without `:protocol` (a tunnel request: this server is not a proxy), a
 *   `:protocol` other than websocket, a missing `:path`, `:scheme` or `:authority`, a repeated
 *   version or origin, a malformed subprotocol list;
 * - 426 (with `sec-websocket-version: 13`) for any version but 13, or none.
 * The returned `key` is empty: there is none over HTTP/2.
 */
export function validateExtendedConnect(h: ReceivedHeaders): UpgradeRequestInfo {
  if (h[':method'] !== 'CONNECT') throw new HandshakeError(405, 'A WebSocket over HTTP/2 is opened with CONNECT', { allow: 'CONNECT' });
  const protocol = h[':protocol'];
  if (protocol === undefined) throw new HandshakeError(400, 'CONNECT without :protocol: this server opens WebSockets (RFC 8441), not tunnels');
  if (protocol !== 'websocket') throw new HandshakeError(400, `CONNECT for :protocol ${String(protocol)}: only websocket is spoken here`);
  // RFC 8441 §4: an extended CONNECT carries :scheme and :path, and :authority says the host.
  const path = h[':path'];
  if (typeof path !== 'string' || path.charCodeAt(0) !== 0x2f) throw new HandshakeError(400, 'Extended CONNECT without an origin-form :path');
  if (h[':scheme'] === undefined) throw new HandshakeError(400, 'Extended CONNECT without :scheme');
  const host = single(h[':authority'], ':authority', 400);
  if (host === undefined || host === '') throw new HandshakeError(400, 'Extended CONNECT without :authority');

  const version = single(h['sec-websocket-version'], 'Sec-WebSocket-Version', 400);
  if (version !== undefined && version.includes(',')) throw new HandshakeError(400, 'Duplicate Sec-WebSocket-Version header');
  if (version !== '13') throw new HandshakeError(426, 'Unsupported WebSocket version: only version 13 is supported', VERSION_REQUIRED);

  const protocolHeader = joined(h['sec-websocket-protocol']);
  const protocols = protocolHeader === undefined ? [] : parseSubprotocolHeader(protocolHeader);
  const origin = single(h.origin, 'Origin', 400);
  if (origin !== undefined && origin.includes(',')) throw new HandshakeError(400, 'Duplicate Origin header');
  return { key: '', version: 13, protocols, extensionsHeader: joined(h['sec-websocket-extensions']), origin, host };
}

/**
 * The fields of the answer that opens a WebSocket on a stream: `:status 200` (RFC 8441 §5), the
 * chosen subprotocol and extensions, the app's headers. Throws TypeError as buildUpgradeResponse
 * does, and on a connection-specific field.
 */
export function extendedConnectResponse(protocol: string | undefined, extensions: string | undefined, headers: OutgoingHeaders | undefined): Http2Fields {
  const fields: Http2Fields = { ':status': 200 };
  if (protocol !== undefined) {
    if (!isToken(protocol)) throw new TypeError(`Invalid subprotocol ${JSON.stringify(protocol)}: not a token`);
    fields['sec-websocket-protocol'] = protocol;
  }
  if (extensions !== undefined && extensions !== '') {
    assertFieldValue(extensions, 'Sec-WebSocket-Extensions');
    fields['sec-websocket-extensions'] = extensions;
  }
  addFields(fields, headers, RESERVED_IN_CONNECT_RESPONSE);
  return fields;
}

/** Header fields, names lowercased (RFC 9113 §8.2.1); a repeated field joined as a list. */
function addFields(fields: Http2Fields, headers: OutgoingHeaders | undefined, reserved: ReadonlySet<string>): void {
  eachHeader(headers, reserved, (name, value) => {
    const lower = name.toLowerCase();
    const before = fields[lower];
    fields[lower] = before === undefined ? value : `${String(before)}, ${value}`;
  });
}

/** The fields of a refusal on a stream: the status, a text body's type, the error's headers minus connection-specific ones. */
export function extendedConnectRefusal(status: HandshakeStatus, headers: Readonly<Record<string, string>> | undefined): Http2Fields {
  const fields: Http2Fields = { ':status': status, 'content-type': 'text/plain; charset=utf-8' };
  if (headers !== undefined) {
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      if (!CONNECTION_SPECIFIC.includes(lower) && lower !== 'content-type' && lower !== 'content-length') fields[lower] = value;
    }
  }
  return fields;
}

/**
 * The answer that opens a connection, in the framing its request came in: the 101 head over
 * HTTP/1.1, or the `:status 200` fields of an RFC 8441 stream.
 */
export type OpeningResponse = { readonly http2: false; readonly head: string } | { readonly http2: true; readonly fields: Http2Fields };

/** Builds the OpeningResponse for a request (`key` is the request's; unused over HTTP/2). */
export function openingResponse(http2: boolean, key: string, protocol: string | undefined, extensions: string | undefined, headers: OutgoingHeaders | undefined): OpeningResponse {
  return http2 ? { http2: true, fields: extendedConnectResponse(protocol, extensions, headers) } : { http2: false, head: buildUpgradeResponse({ key, protocol, extensions, headers }) };
}

// ---------------------------------------------------------------------------------------------
// Client side

/** As for an HTTP/1.1 upgrade, with `:authority` (host, or host:port when not 443) for Host and no key. */
export type ExtendedConnectOptions = Omit<UpgradeRequestOptions, 'host' | 'key'> & { readonly authority: string };

/**
 * The request fields of an extended CONNECT (RFC 8441 §4, §5). Throws TypeError on an invalid
 * path, authority, subprotocol or header, as upgradeRequestFields does.
 */
export function extendedConnectRequest(opts: ExtendedConnectOptions): Http2Fields {
  assertRequestTarget(opts.path);
  assertFieldValue(opts.authority, ':authority');
  if (opts.authority === '' || opts.authority.includes(' ')) throw new TypeError('Invalid :authority');
  const fields: Http2Fields = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': opts.path,
    ':authority': opts.authority,
    'sec-websocket-version': '13',
  };
  const protocols = opts.protocols ?? [];
  if (protocols.length > 0) {
    for (const p of protocols) {
      if (typeof p !== 'string' || !isToken(p)) throw new TypeError(`Invalid subprotocol ${JSON.stringify(p)}: not a token`);
    }
    if (new Set(protocols).size !== protocols.length) throw new TypeError('Subprotocols must be unique');
    fields['sec-websocket-protocol'] = protocols.join(', ');
  }
  if (opts.extensions !== undefined && opts.extensions !== '') {
    assertFieldValue(opts.extensions, 'Sec-WebSocket-Extensions');
    fields['sec-websocket-extensions'] = opts.extensions;
  }
  if (opts.origin !== undefined) {
    assertFieldValue(opts.origin, 'Origin');
    fields.origin = opts.origin;
  }
  addFields(fields, opts.headers, RESERVED_IN_CONNECT_REQUEST);
  return fields;
}

/**
 * validateExtendedConnectResponse checks the server's answer to an extended CONNECT: a 2xx
 * opens the WebSocket (RFC 9113 §8.5), anything else fails it; then the subprotocol and
 * extensions, as over HTTP/1.1 (RFC 6455 §4.1). Throws HandshakeError(400) to fail.
 */
export function validateExtendedConnectResponse(h: ReceivedHeaders, offered: readonly string[]): UpgradeResponseInfo {
  const status = Number(h[':status']);
  if (!(status >= 200 && status <= 299)) throw clientFailure(`unexpected server response ${String(h[':status'])}`);
  return selectedByServer(h, offered);
}
