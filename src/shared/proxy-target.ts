/**
 * A proxy target (`{ proxy }` from an app's `upgrade`, a route's `proxy`, `shardws proxy`)
 * checked once into the form the worker dials from. A target from the option table is checked
 * at startup; one an app returns, at each upgrade (a bad one is the app's bug: 500).
 */
import type { ProxyTarget, ResponseHeaders } from './app.ts';
import { assertFieldValue } from './handshake.ts';
import { parseSubprotocolHeader } from './subprotocol-header.ts';
import { isToken } from './token-list.ts';

export type ProxyMode = 'message' | 'passthrough';
export type ProxyBalance = 'least-connections' | 'round-robin';

export interface ResolvedProxyTarget {
  /** ws:// or wss:// URLs, normalized (`new URL(...).href`), at least one. */
  readonly urls: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  /** null: offer what the client offered. */
  readonly protocols: readonly string[] | null;
  readonly mode: ProxyMode;
  readonly balance: ProxyBalance;
  readonly sticky: string | null;
  readonly timeout: number;
  readonly deflate: boolean;
  readonly tls: { readonly ca?: string | readonly string[]; readonly rejectUnauthorized?: boolean; readonly servername?: string } | null;
}

/** Seconds an upstream has for its 101 by default. */
export const DEFAULT_PROXY_TIMEOUT = 10;
const MAX_PROXY_TIMEOUT = 120;

/** Checks `target`; throws TypeError or RangeError naming `what` (an option, or the app's result). */
export function resolveProxyTarget(target: ProxyTarget, what: string): ResolvedProxyTarget {
  if (typeof target !== 'object' || target === null) throw new TypeError(`${what} must be an object with a url`);
  const list = typeof target.url === 'string' ? [target.url] : target.url;
  if (!Array.isArray(list) || list.length === 0) throw new TypeError(`${what}.url must be a ws:// or wss:// URL, or a non-empty array of them`);
  const urls = list.map((url) => {
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      throw new TypeError(`${what}.url: ${JSON.stringify(url)} is not a URL`);
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new TypeError(`${what}.url: ${JSON.stringify(url)} is not a ws:// or wss:// URL`);
    // RFC 6455 §3: a WebSocket URI has no fragment.
    if (parsed.hash !== '') throw new TypeError(`${what}.url: ${JSON.stringify(url)} has a fragment`);
    return parsed.href;
  });
  const mode = target.mode ?? 'message';
  if (mode !== 'message' && mode !== 'passthrough') throw new TypeError(`${what}.mode must be message or passthrough, got ${String(mode)}`);
  const balance = target.balance ?? 'least-connections';
  if (balance !== 'least-connections' && balance !== 'round-robin') throw new TypeError(`${what}.balance must be least-connections or round-robin, got ${String(balance)}`);
  if (target.sticky !== undefined && typeof target.sticky !== 'string') throw new TypeError(`${what}.sticky must be a string`);
  const timeout = target.timeout ?? DEFAULT_PROXY_TIMEOUT;
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > MAX_PROXY_TIMEOUT) throw new RangeError(`${what}.timeout must be a number of seconds above 0, at most ${MAX_PROXY_TIMEOUT}`);
  if (target.deflate !== undefined && typeof target.deflate !== 'boolean') throw new TypeError(`${what}.deflate must be true or false`);
  if (target.tls !== undefined && (typeof target.tls !== 'object' || target.tls === null)) throw new TypeError(`${what}.tls must be an object of TLS options`);
  if (target.protocols !== undefined) {
    if (!Array.isArray(target.protocols)) throw new TypeError(`${what}.protocols must be an array of subprotocol names`);
    if (target.protocols.length > 0) {
      try {
        parseSubprotocolHeader(target.protocols.join(', '));
      } catch (error) {
        throw new TypeError(`${what}.protocols: ${(error as Error).message}`);
      }
    }
  }
  return Object.freeze({
    urls: Object.freeze(urls),
    headers: definedHeaders(target.headers),
    protocols: target.protocols === undefined ? null : Object.freeze([...target.protocols]),
    mode,
    balance,
    sticky: target.sticky ?? null,
    timeout,
    deflate: target.deflate ?? false,
    tls: target.tls === undefined ? null : Object.freeze({ ...target.tls }),
  });
}

function definedHeaders(headers: ResponseHeaders | undefined): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new TypeError(`proxy header ${name} must be a string`);
    // Checked here, not by Node's http client at the dial: there it would throw past the 502 path.
    if (!isToken(name)) throw new TypeError(`proxy header name ${JSON.stringify(name)} is not a token`);
    assertFieldValue(value, name);
    out[name] = value;
  }
  return Object.freeze(out);
}
