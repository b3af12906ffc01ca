/**
 * Reading an HTTP/1.1 request head that opens a WebSocket (RFC 6455 §4.1 ... §4.2.1), without
 * Node's HTTP machinery, for the common case only. What it accepts is a strict subset of RFC 9112
 * §2–§5: `GET`, an origin-form target of visible ASCII, `HTTP/1.1`, CRLF line ends, token field
 * names followed at once by `:`, field values of visible characters, spaces and tabs (obs-text
 * allowed, as Node does), an `Upgrade` field and `upgrade` in `Connection`, no body (`Content-Length` other than 0 or any
 * `Transfer-Encoding`). Anything else, malformed or merely unusual (bare LF, obs-fold, another
 * method or version, control characters, over 100 fields), is `other`: the caller hands the bytes
 * to Node's own parser (llhttp), which answers it as it always has. So hostile input meets the
 * same parser as before, and this one only has to be right about the requests it accepts.
 *
 * Linear time, no backtracking, nothing allocated until the head is complete; the caller bounds
 * the bytes it accumulates by maxHeaderSize.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isTokenChar } from './token-list.ts';

export interface RequestHead {
  readonly method: 'GET';
  readonly url: string;
  readonly httpVersion: '1.1';
  /** As Node's IncomingMessage has them: lowercase names, repeats joined (see addField). */
  readonly headers: IncomingHttpHeaders;
  /** Names and values in the order received, names as sent. */
  readonly rawHeaders: readonly string[];
}

export type HeadParse =
  /** No CRLF CRLF yet: read more (the caller enforces the size limit). */
  | { readonly kind: 'incomplete' }
  /** A WebSocket upgrade head of `length` bytes (its final CRLF CRLF included). */
  | { readonly kind: 'upgrade'; readonly head: RequestHead; readonly length: number }
  /** Anything else: for Node's HTTP parser. */
  | { readonly kind: 'other' };

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
/** Requests with more fields than this go to Node's parser (which stops counting at 2,000). */
const MAX_FIELDS = 100;

const INCOMPLETE: HeadParse = Object.freeze({ kind: 'incomplete' });
const OTHER: HeadParse = Object.freeze({ kind: 'other' });

/**
 * Where the head ends: the index just past the first CRLF CRLF at or after `from` (a caller
 * that accumulates passes the previous length less 3), or -1.
 */
export function headEnd(bytes: Uint8Array, from = 0): number {
  for (let i = Math.max(0, from); i + 3 < bytes.length; i++) {
    if (bytes[i] === CR && bytes[i + 1] === LF && bytes[i + 2] === CR && bytes[i + 3] === LF) return i + 4;
  }
  return -1;
}

/** Parses `bytes` (the start of a connection's input). */
export function parseRequestHead(bytes: Uint8Array): HeadParse {
  const end = headEnd(bytes);
  if (end < 0) {
    // Only what could still become `GET /...` is worth waiting for.
    const prefix = Math.min(bytes.length, 4);
    for (let i = 0; i < prefix; i++) if (bytes[i] !== GET_SP[i]) return OTHER;
    return INCOMPLETE;
  }
  const head = parseComplete(bytes, end);
  return head === null ? OTHER : { kind: 'upgrade', head, length: end };
}

const GET_SP = [0x47, 0x45, 0x54, SP];
const HTTP_11 = [0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31]; // HTTP/1.1

function latin1(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

/** The head in bytes[0, end) (end is just past CRLF CRLF), or null when outside the subset. */
function parseComplete(bytes: Uint8Array, end: number): RequestHead | null {
  // request-line = "GET" SP origin-form SP "HTTP/1.1" CRLF
  for (let i = 0; i < 4; i++) if (bytes[i] !== GET_SP[i]) return null;
  let at = 4;
  if (bytes[at] !== 0x2f) return null; // origin-form starts with "/"
  const targetStart = at;
  while (at < end && bytes[at]! > SP && bytes[at]! < 0x7f) at++;
  if (bytes[at] !== SP) return null;
  const url = latin1(bytes, targetStart, at);
  at++;
  for (let i = 0; i < 8; i++) if (bytes[at + i] !== HTTP_11[i]) return null;
  at += 8;
  if (bytes[at] !== CR || bytes[at + 1] !== LF) return null;
  at += 2;

  const headers: IncomingHttpHeaders = {};
  const rawHeaders: string[] = [];
  let upgrade = false;
  let connectionUpgrade = false;
  let fields = 0;
  // Each field line: token ":" OWS value OWS CRLF; the empty line ends the head.
  while (!(bytes[at] === CR && bytes[at + 1] === LF)) {
    if (++fields > MAX_FIELDS) return null;
    const nameStart = at;
    while (at < end && isTokenChar(bytes[at]!)) at++;
    if (at === nameStart || bytes[at] !== COLON) return null;
    const name = latin1(bytes, nameStart, at);
    at++;
    while (bytes[at] === SP || bytes[at] === HTAB) at++;
    const valueStart = at;
    let valueEnd = at;
    for (;;) {
      const c = bytes[at]!;
      if (c === CR) break;
      // Visible ASCII, space, tab, obs-text; a control character (bare LF included) is not ours.
      if ((c < SP && c !== HTAB) || c === 0x7f) return null;
      at++;
      if (c !== SP && c !== HTAB) valueEnd = at;
    }
    if (bytes[at + 1] !== LF) return null;
    at += 2;
    const value = latin1(bytes, valueStart, valueEnd);
    const lower = name.toLowerCase();
    // RFC 9112 §6.3: no body may follow an upgrade request we read ourselves.
    if (lower === 'transfer-encoding' || (lower === 'content-length' && value !== '0')) return null;
    if (lower === 'upgrade') upgrade = true;
    else if (lower === 'connection' && hasUpgradeToken(value)) connectionUpgrade = true;
    rawHeaders.push(name, value);
    addField(headers, lower, value);
  }
  // Node's parser makes an 'upgrade' of a request only with both (llhttp: F_UPGRADE and
  // F_CONNECTION_UPGRADE); any other request is a plain one, for Node's server as before.
  return upgrade && connectionUpgrade ? { method: 'GET', url, httpVersion: '1.1', headers, rawHeaders } : null;
}

/** Whether a Connection field value lists the token "upgrade" (any case, RFC 9110 §7.6.1). */
function hasUpgradeToken(value: string): boolean {
  for (const part of value.split(',')) if (part.trim().toLowerCase() === 'upgrade') return true;
  return false;
}

/** Fields Node keeps only the first of (lib/_http_incoming.js, matchKnownFields). */
const FIRST_ONLY = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);

/**
 * Adds one field as Node's IncomingMessage does, so an app sees the same `headers` whichever
 * parser read the request: the first value of the fields above, `set-cookie` as an array,
 * `cookie` joined with "; ", every other repeat joined with ", " (a list, RFC 9110 §5.3).
 */
function addField(headers: IncomingHttpHeaders, name: string, value: string): void {
  const existing = headers[name];
  if (existing === undefined) {
    headers[name] = name === 'set-cookie' ? [value] : value;
    return;
  }
  if (FIRST_ONLY.has(name)) return;
  if (name === 'set-cookie') (existing as string[]).push(value);
  else headers[name] = `${existing as string}${name === 'cookie' ? '; ' : ', '}${value}`;
}
