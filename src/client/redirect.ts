/**
 * Following a 3xx answer to the upgrade (the `followRedirects` option; browsers never follow
 * one: WHATWG Fetch runs a WebSocket request with redirect mode "error"). The rules are ws's:
 * the Location is resolved against the URL that was redirected, http(s) maps to ws(s), and
 * credentials go only where the user sent them.
 */
import type { OutgoingHeaders } from '../shared/handshake.ts';
import { basicCredentials } from './transport.ts';

/** The WebSocket URL a Location header leads to; throws SyntaxError for one that is not a ws/wss/http/https URL. */
export function redirectTarget(location: string, from: URL): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new SyntaxError(`the server redirected to an invalid URL: ${JSON.stringify(location.slice(0, 200))}`);
  }
  if (next.protocol === 'http:') next.protocol = 'ws:';
  else if (next.protocol === 'https:') next.protocol = 'wss:';
  if (next.protocol !== 'ws:' && next.protocol !== 'wss:') {
    throw new SyntaxError(`the server redirected to a ${next.protocol}// URL, not a WebSocket one`);
  }
  // RFC 6455 §3: a WebSocket URL has no fragment; a Location may carry one for browsers' sake.
  next.hash = '';
  return next;
}

/**
 * Whether credentials given for `original` (Authorization, Cookie, the URL's user and password)
 * may be sent to `to`: same host (and explicit port), and no step down from wss to ws, where
 * they would cross the network in clear text.
 */
export function keepsCredentials(original: URL, to: URL): boolean {
  return to.host === original.host && !(original.protocol === 'wss:' && to.protocol === 'ws:');
}

const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie']);

/**
 * The caller's headers for a request to `to`: with Basic credentials from the original URL's
 * user and password when no Authorization was given (as ws), and without Authorization and
 * Cookie where `keepsCredentials` says no.
 */
export function headersFor(headers: OutgoingHeaders, original: URL, to: URL): OutgoingHeaders {
  const names = Object.keys(headers);
  if (!keepsCredentials(original, to)) {
    if (!names.some((name) => CREDENTIAL_HEADERS.has(name.toLowerCase()))) return headers;
    const kept: Record<string, string | readonly string[]> = {};
    for (const name of names) if (!CREDENTIAL_HEADERS.has(name.toLowerCase())) kept[name] = headers[name]!;
    return kept;
  }
  const credentials = basicCredentials(original);
  if (credentials === null || names.some((name) => name.toLowerCase() === 'authorization')) return headers;
  return { ...headers, Authorization: credentials };
}
