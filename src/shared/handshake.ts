/**
 * The RFC 6455 §4 opening handshake, both sides, as pure functions: plain header data in, plain
 * HTTP text out. No sockets and no `node:http` objects, so the worker (http.Server 'upgrade'), the
 * client and the load generator share it.
 *
 * Header objects are shaped like Node's `req.headers`: lowercase keys, repeated headers joined
 * with ", " (or given as an array). Every string built here is Latin-1 text with ASCII headers:
 * write it with `socket.write(text, 'latin1')`.
 */
import { Buffer } from 'node:buffer';
import { createHash, hash, randomBytes } from 'node:crypto';
import { HandshakeError, type HandshakeStatus } from './errors.ts';
import { WEBSOCKET_GUID } from './opcodes.ts';
import { parseSubprotocolHeader } from './subprotocol-header.ts';
import { isToken, parseTokenList, parseUpgradeProtocols } from './token-list.ts';

/** Received headers as Node gives them: lowercase names; repeats joined by ", " or as an array. */
export type ReceivedHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** Headers to send: each value is one header line, or one line per array element. */
export type OutgoingHeaders = Readonly<Record<string, string | readonly string[]>>;

/** The parts of an upgrade request head the handshake reads; Node's IncomingMessage fits as is. */
export interface UpgradeRequestHead {
  readonly method?: string | undefined;
  readonly httpVersion: string;
  readonly headers: ReceivedHeaders;
}

/** What a valid upgrade request offers. */
export interface UpgradeRequestInfo {
  /** Sec-WebSocket-Key, to be answered with `buildUpgradeResponse`. */
  readonly key: string;
  readonly version: 13;
  /** Offered subprotocols in the client's order of preference; empty when none. */
  readonly protocols: readonly string[];
  /** Raw Sec-WebSocket-Extensions, for the extension negotiator; undefined when absent. */
  readonly extensionsHeader: string | undefined;
  readonly origin: string | undefined;
  readonly host: string;
}

/** Picks a subprotocol from the client's offers; must return one of them, or undefined for none. */
export type SubprotocolSelector = (offered: readonly string[]) => string | undefined;

/**
 * Status of every client-side HandshakeError (from `validateUpgradeResponse`). Nothing is sent
 * back on the client side; 400 only says "the handshake was invalid". The server's own status,
 * when it refused, is in the response the caller already holds (and in the message).
 */
export const CLIENT_HANDSHAKE_FAILURE: HandshakeStatus = 400;

/** RFC 6455 §4.4: the only version spoken; refusals of other versions carry it (with 426). */
const VERSION_REQUIRED: Readonly<Record<string, string>> = Object.freeze({
  'Sec-WebSocket-Version': '13',
  // RFC 9110 §15.5.22: a 426 response MUST carry Upgrade naming the protocol required.
  Upgrade: 'websocket',
});

// ---------------------------------------------------------------------------------------------
// Shared

/** computeAcceptKey answers a Sec-WebSocket-Key: base64(SHA-1(key + GUID)), RFC 6455 §4.2.2. */
export function computeAcceptKey(key: string): string {
  // Latin-1 keeps the hashed bytes equal to the wire bytes: Node decodes header bytes as Latin-1.
  // A valid key is ASCII, where UTF-8 is the same: the one-shot hash (no Hash object) does.
  if (ASCII.test(key)) return hash('sha1', key + WEBSOCKET_GUID, 'base64');
  return createHash('sha1').update(key + WEBSOCKET_GUID, 'latin1').digest('base64');
}

const ASCII = /^[\x00-\x7f]*$/;

const BASE64 = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64[c.charCodeAt(0)] = 1;

/**
 * isValidKey: RFC 6455 §4.2.1 (5), base64 of exactly 16 bytes, which is 22 alphabet characters
 * and "==". Like ws, the unused low bits of the 22nd character are not checked.
 */
export function isValidKey(key: string): boolean {
  if (key.length !== 24 || key.charCodeAt(22) !== 0x3d || key.charCodeAt(23) !== 0x3d) return false;
  for (let i = 0; i < 22; i++) {
    const code = key.charCodeAt(i);
    if (code >= 128 || BASE64[code] !== 1) return false;
  }
  return true;
}

/** One value of a header that must not repeat; HandshakeError(status) when it does. */
export function single(value: string | string[] | undefined, name: string, status: HandshakeStatus): string | undefined {
  if (typeof value === 'string' || value === undefined) return value;
  if (value.length > 1) throw new HandshakeError(status, `Duplicate ${name} header`);
  return value[0];
}

/** A list header's value, repeats joined as one list (RFC 9110 §5.3). */
export function joined(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' || value === undefined ? value : value.length === 0 ? undefined : value.join(', ');
}

/**
 * Field values we send are visible ASCII, space and tab only (RFC 9110 §5.5). CR, LF and NUL would
 * let a value inject headers; characters above 0xFF would, once truncated by a Latin-1 write.
 */
export function assertFieldValue(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`Header ${name} must be a string`);
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code > 0x7e) {
      throw new TypeError(`Invalid character at index ${i} in the value of header ${name}`);
    }
  }
}

/** Checks caller-supplied headers and hands each field to `add`; names are tokens and may not override `reserved` ones. */
export function eachHeader(headers: OutgoingHeaders | undefined, reserved: ReadonlySet<string>, add: (name: string, value: string) => void): void {
  if (headers === undefined) return;
  for (const name of Object.keys(headers)) {
    if (!isToken(name)) throw new TypeError(`Invalid header name ${JSON.stringify(name)}`);
    if (reserved.has(name.toLowerCase())) throw new TypeError(`Header ${name} is set by the handshake and cannot be overridden`);
    const value: unknown = headers[name];
    const values: readonly unknown[] = Array.isArray(value) ? value : [value];
    for (const v of values) {
      assertFieldValue(v, name);
      add(name, v);
    }
  }
}

/** Appends caller-supplied header lines (see eachHeader). */
function appendHeaders(lines: string[], headers: OutgoingHeaders | undefined, reserved: ReadonlySet<string>): void {
  eachHeader(headers, reserved, (name, value) => lines.push(`${name}: ${value}`));
}

const head = (lines: readonly string[]): string => lines.join('\r\n') + '\r\n\r\n';

// ---------------------------------------------------------------------------------------------
// Server side

/** Parses "major.minor" (Node's `httpVersion`) and tells whether it is at least 1.1. */
function isHttp11OrHigher(version: string): boolean {
  const dot = version.indexOf('.');
  if (dot < 1 || dot === version.length - 1) return false;
  for (let i = 0; i < version.length; i++) {
    const code = version.charCodeAt(i);
    if (i !== dot && (code < 0x30 || code > 0x39)) return false;
  }
  const major = Number(version.slice(0, dot));
  return major > 1 || (major === 1 && Number(version.slice(dot + 1)) >= 1);
}

/**
 * validateUpgradeRequest checks a client's opening handshake (RFC 6455 §4.2.1) and returns what it
 * offers, or throws HandshakeError with the status to refuse it with:
 * - 405 (with `Allow: GET`) when the method is not GET;
 * - 426 (with `Upgrade: websocket`) when there is no Upgrade header: a plain HTTP request, as ws answers;
 * - 426 (with `Sec-WebSocket-Version: 13`) for any version but 13 (RFC 6455 §4.4);
 * - 400 for everything else: HTTP/1.0, an Upgrade to another protocol, no `upgrade` connection option,
 *   a bad or repeated key, a repeated version, Host or Origin, a malformed subprotocol list.
 */
export function validateUpgradeRequest(req: UpgradeRequestHead): UpgradeRequestInfo {
  // RFC 6455 §4.2.1 (1): "An HTTP/1.1 or higher GET request".
  if (req.method !== 'GET') {
    throw new HandshakeError(405, 'The WebSocket opening handshake must be a GET request', { Allow: 'GET' });
  }
  if (!isHttp11OrHigher(req.httpVersion)) {
    throw new HandshakeError(400, 'The WebSocket opening handshake requires HTTP/1.1 or higher');
  }
  const h = req.headers;

  // §4.2.1 (2); RFC 9110 §7.2: more than one Host is a 400. (Node keeps only the first Host it
  // reads, so a worker that cares checks rawHeaders.)
  const host = single(h.host, 'Host', 400);
  if (host === undefined || host === '') throw new HandshakeError(400, 'Missing Host header');

  // §4.2.1 (3). An Upgrade to something else is a bad WebSocket handshake: 400, as in ws and
  // §4.2.1's "such as 400 Bad Request". No Upgrade at all is a plain request to a WebSocket
  // endpoint: 426 says which protocol to upgrade to (RFC 9110 §15.5.22).
  const upgrade = joined(h.upgrade);
  if (upgrade === undefined) {
    throw new HandshakeError(426, 'This endpoint only speaks WebSocket', { Upgrade: 'websocket' });
  }
  if (!parseUpgradeProtocols(upgrade).includes('websocket')) {
    throw new HandshakeError(400, 'The Upgrade header does not name websocket');
  }

  // §4.2.1 (4): Connection is a token list that must include "Upgrade", in any case.
  const connection = joined(h.connection);
  if (connection === undefined || !parseTokenList(connection, 'Connection').includes('upgrade')) {
    throw new HandshakeError(400, 'The Connection header does not include upgrade');
  }

  // §4.2.1 (6), §11.3.5: exactly one Sec-WebSocket-Version, and it must be 13. A repeat (which
  // Node joins with ", ") is malformed, not another version: 400 rather than 426.
  const version = single(h['sec-websocket-version'], 'Sec-WebSocket-Version', 400);
  if (version !== undefined && version.includes(',')) throw new HandshakeError(400, 'Duplicate Sec-WebSocket-Version header');
  if (version !== '13') {
    throw new HandshakeError(426, 'Unsupported WebSocket version: only version 13 is supported', VERSION_REQUIRED);
  }

  // §4.2.1 (5), §11.3.1: one key, base64 of 16 bytes.
  const key = single(h['sec-websocket-key'], 'Sec-WebSocket-Key', 400);
  if (key === undefined) throw new HandshakeError(400, 'Missing Sec-WebSocket-Key header');
  if (key.includes(',')) throw new HandshakeError(400, 'Duplicate Sec-WebSocket-Key header');
  if (!isValidKey(key)) throw new HandshakeError(400, 'Invalid Sec-WebSocket-Key header: not base64 of 16 bytes');

  // §4.2.1 (8): optional; repeats join into one list, which must still hold unique names.
  const protocolHeader = joined(h['sec-websocket-protocol']);
  const protocols = protocolHeader === undefined ? [] : parseSubprotocolHeader(protocolHeader);

  // §4.2.1 (7): an origin serialization never holds a comma (RFC 6454 §6.2), so one means a repeat,
  // which would make any origin check ambiguous.
  const origin = single(h.origin, 'Origin', 400);
  if (origin !== undefined && origin.includes(',')) throw new HandshakeError(400, 'Duplicate Origin header');

  return { key, version: 13, protocols, extensionsHeader: joined(h['sec-websocket-extensions']), origin, host };
}

/**
 * selectSubprotocol chooses the subprotocol to answer with (RFC 6455 §4.2.2 (5.4)): by default the
 * first of the client's offers, in the client's order, that `supported` lists (exact, case-sensitive
 * match). A selector function decides instead, but must pick one of the offers: RFC 6455 §4.1 has
 * the client fail the connection otherwise. Undefined means no subprotocol; nothing offered, none chosen.
 */
export function selectSubprotocol(
  offered: readonly string[],
  supported: readonly string[] | SubprotocolSelector,
): string | undefined {
  if (offered.length === 0) return undefined;
  if (typeof supported === 'function') {
    const chosen = supported(offered);
    if (chosen !== undefined && !offered.includes(chosen)) {
      throw new TypeError(`The subprotocol selector chose ${JSON.stringify(chosen)}, which the client did not offer`);
    }
    return chosen;
  }
  return offered.find((p) => supported.includes(p));
}

export interface UpgradeResponseOptions {
  /** The request's Sec-WebSocket-Key (`UpgradeRequestInfo.key`). */
  readonly key: string;
  /** The chosen subprotocol (`selectSubprotocol`), a token; omit for none. */
  readonly protocol?: string | undefined;
  /** Negotiated Sec-WebSocket-Extensions value; omitted when undefined or empty. */
  readonly extensions?: string | undefined;
  /** Extra headers (e.g. Set-Cookie); the handshake's own headers cannot be overridden. */
  readonly headers?: OutgoingHeaders | undefined;
}

const RESERVED_IN_101 = new Set([
  'upgrade',
  'connection',
  'sec-websocket-accept',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  // RFC 9110 §8.6, §6.1: a 1xx response has no content and no framing headers.
  'content-length',
  'transfer-encoding',
]);

/**
 * buildUpgradeResponse returns the complete 101 response head (RFC 6455 §4.2.2 (5)). Throws
 * TypeError on a protocol that is not a token, a bad extra header name, or a value holding control
 * or non-ASCII characters: header injection is impossible by construction.
 */
export function buildUpgradeResponse(opts: UpgradeResponseOptions): string {
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${computeAcceptKey(opts.key)}`,
  ];
  if (opts.protocol !== undefined) {
    if (!isToken(opts.protocol)) throw new TypeError(`Invalid subprotocol ${JSON.stringify(opts.protocol)}: not a token`);
    lines.push(`Sec-WebSocket-Protocol: ${opts.protocol}`);
  }
  if (opts.extensions !== undefined && opts.extensions !== '') {
    assertFieldValue(opts.extensions, 'Sec-WebSocket-Extensions');
    lines.push(`Sec-WebSocket-Extensions: ${opts.extensions}`);
  }
  appendHeaders(lines, opts.headers, RESERVED_IN_101);
  return head(lines);
}

const REASON: Readonly<Record<HandshakeStatus, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const RESERVED_IN_ERROR = new Set(['connection', 'content-type', 'content-length', 'transfer-encoding']);

/**
 * buildErrorResponse returns a complete response refusing an upgrade (for a HandshakeError: pass
 * its status, message and headers). The body is `message` (default: the reason phrase) as UTF-8
 * plain text, already encoded as Latin-1 characters; the connection is closed after it.
 */
export function buildErrorResponse(status: HandshakeStatus, message?: string, headers?: OutgoingHeaders): string {
  if (!Object.hasOwn(REASON, status)) throw new TypeError(`Unsupported status ${String(status)}`);
  const reason = REASON[status];
  const body = Buffer.from(message ?? reason, 'utf8').toString('latin1');
  // RFC 9110 §7.8: a sender of Upgrade (a 426 names the protocol to use) also lists the upgrade option.
  const upgrades = headers !== undefined && Object.keys(headers).some((name) => name.toLowerCase() === 'upgrade');
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    `Connection: ${upgrades ? 'Upgrade, close' : 'close'}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${body.length}`,
  ];
  appendHeaders(lines, headers, RESERVED_IN_ERROR);
  return head(lines) + body;
}

// ---------------------------------------------------------------------------------------------
// Client side

/** generateKey returns a fresh Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 §4.1 (7)). */
export function generateKey(): string {
  return randomBytes(16).toString('base64');
}

export interface UpgradeRequestOptions {
  /** Host header value: host, or host:port when the port is not the scheme's default (RFC 6455 §4.1 (4)). */
  readonly host: string;
  /** Origin-form request target: path and query, starting with "/", no fragment (RFC 6455 §3). */
  readonly path: string;
  /** From `generateKey`. */
  readonly key: string;
  /** Subprotocols to offer, most preferred first; unique tokens. */
  readonly protocols?: readonly string[] | undefined;
  /** Sec-WebSocket-Extensions offer; omitted when undefined or empty. */
  readonly extensions?: string | undefined;
  readonly origin?: string | undefined;
  /** Extra headers (e.g. Authorization); the handshake's own headers cannot be overridden. */
  readonly headers?: OutgoingHeaders | undefined;
}

export const RESERVED_IN_REQUEST: ReadonlySet<string> = new Set([
  'host',
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'origin',
  'content-length',
  'transfer-encoding',
]);

/** Visible ASCII with no "#": RFC 6455 §3 forbids fragments, and a space or CR would end the request line. */
export function assertRequestTarget(path: string): void {
  if (typeof path !== 'string' || path.charCodeAt(0) !== 0x2f) throw new TypeError('The request path must start with "/"');
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code <= 0x20 || code >= 0x7f || code === 0x23) {
      throw new TypeError(`Invalid character at index ${i} in the request path`);
    }
  }
}

/**
 * upgradeRequestFields returns the header fields of the opening handshake request (RFC 6455
 * §4.1) as a flat [name, value, name, value, …] list, in the order they are sent (node:http's
 * `headers` takes this form as is). Throws TypeError on an invalid path, host, key, subprotocol
 * (not a token, or repeated) or header.
 */
export function upgradeRequestFields(opts: UpgradeRequestOptions): string[] {
  assertRequestTarget(opts.path);
  assertFieldValue(opts.host, 'Host');
  if (opts.host === '' || opts.host.includes(' ') || opts.host.includes('\t')) throw new TypeError('Invalid Host');
  if (!isValidKey(opts.key)) throw new TypeError('Invalid Sec-WebSocket-Key: not base64 of 16 bytes');
  const fields = [
    'Host', opts.host,
    'Upgrade', 'websocket',
    'Connection', 'Upgrade',
    'Sec-WebSocket-Key', opts.key,
    'Sec-WebSocket-Version', '13',
  ];
  const protocols = opts.protocols ?? [];
  if (protocols.length > 0) {
    // RFC 6455 §4.1 (10): non-empty tokens, all unique.
    for (const p of protocols) {
      if (typeof p !== 'string' || !isToken(p)) throw new TypeError(`Invalid subprotocol ${JSON.stringify(p)}: not a token`);
    }
    if (new Set(protocols).size !== protocols.length) throw new TypeError('Subprotocols must be unique');
    fields.push('Sec-WebSocket-Protocol', protocols.join(', '));
  }
  if (opts.extensions !== undefined && opts.extensions !== '') {
    assertFieldValue(opts.extensions, 'Sec-WebSocket-Extensions');
    fields.push('Sec-WebSocket-Extensions', opts.extensions);
  }
  if (opts.origin !== undefined) {
    assertFieldValue(opts.origin, 'Origin');
    fields.push('Origin', opts.origin);
  }
  eachHeader(opts.headers, RESERVED_IN_REQUEST, (name, value) => fields.push(name, value));
  return fields;
}

/** buildUpgradeRequest returns the complete opening handshake request (see upgradeRequestFields). */
export function buildUpgradeRequest(opts: UpgradeRequestOptions): string {
  const fields = upgradeRequestFields(opts);
  const lines = [`GET ${opts.path} HTTP/1.1`];
  for (let i = 0; i < fields.length; i += 2) lines.push(`${fields[i]}: ${fields[i + 1]}`);
  return head(lines);
}

/** The parts of the server's response the client checks; Node's IncomingMessage fits as is. */
export interface UpgradeResponse {
  readonly statusCode?: number | undefined;
  readonly headers: ReceivedHeaders;
}

export interface UpgradeResponseExpectation {
  /** The Sec-WebSocket-Key the request carried. */
  readonly key: string;
  /** The subprotocols the request offered. */
  readonly protocols: readonly string[];
}

export interface UpgradeResponseInfo {
  /** The server's chosen subprotocol, "" for none (as WebSocket#protocol in browsers). */
  readonly protocol: string;
  /** Raw Sec-WebSocket-Extensions, for the extension negotiator to check against the offer. */
  readonly extensionsHeader: string | undefined;
}

/**
 * validateUpgradeResponse checks the server's answer against RFC 6455 §4.1's client requirements
 * and throws HandshakeError(CLIENT_HANDSHAKE_FAILURE = 400) when the client must _Fail the
 * WebSocket Connection_. A server that selects no subprotocol is accepted, as browsers do.
 */
export function validateUpgradeResponse(res: UpgradeResponse, expected: UpgradeResponseExpectation): UpgradeResponseInfo {
  if (res.statusCode !== 101) throw clientFailure(`unexpected server response ${String(res.statusCode)}`);
  const h = res.headers;

  // §4.1 client (2): Upgrade must be exactly "websocket", ignoring case.
  const upgrade = joined(h.upgrade);
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') throw clientFailure('the Upgrade header is not websocket');

  // §4.1 client (3): Connection must include the "Upgrade" token, ignoring case.
  const connection = joined(h.connection);
  if (connection === undefined || !parseTokenList(connection, 'Connection').includes('upgrade')) {
    throw clientFailure('the Connection header does not include upgrade');
  }

  // §4.1 client (4): Sec-WebSocket-Accept must be the hash of our key (exact: base64 is case-sensitive).
  const accept = h['sec-websocket-accept'];
  if (accept === undefined) throw clientFailure('the Sec-WebSocket-Accept header is missing');
  if (accept !== computeAcceptKey(expected.key)) throw clientFailure('the Sec-WebSocket-Accept header does not match the key');

  return selectedByServer(h, expected.protocols);
}

/** The subprotocol and extensions a server's accepting answer names, checked against the offer. */
export function selectedByServer(h: ReceivedHeaders, offered: readonly string[]): UpgradeResponseInfo {
  const extensionsHeader = joined(h['sec-websocket-extensions']);
  // §4.1 client (6): the server may pick at most one subprotocol, and only one we offered.
  const protocol = h['sec-websocket-protocol'];
  if (protocol === undefined) return { protocol: '', extensionsHeader };
  if (typeof protocol !== 'string' || protocol.includes(',')) throw clientFailure('the server selected more than one subprotocol');
  if (offered.length === 0) throw clientFailure('the server selected a subprotocol but none was offered');
  if (!offered.includes(protocol)) throw clientFailure('the server selected a subprotocol that was not offered');
  return { protocol, extensionsHeader };
}

export function clientFailure(message: string): HandshakeError {
  return new HandshakeError(CLIENT_HANDSHAKE_FAILURE, `WebSocket handshake failed: ${message}`);
}
