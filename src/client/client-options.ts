/**
 * The client's options: what each means, its default (CLIENT_OPTIONS and RECONNECT_OPTIONS hold
 * them, with the server's unit rules: seconds and bytes) and `resolveClientOptions`, which checks
 * them once, in the constructor, so that a bad option throws there rather than failing every
 * connection later.
 */
import type { Agent } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import { optionValue } from '../shared/config.ts';
import type { OptionSpec } from '../shared/config.ts';
import { upgradeRequestFields } from '../shared/handshake.ts';
import type { OutgoingHeaders } from '../shared/handshake.ts';
import { DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, DEFAULT_THRESHOLD, buildDeflateOffer } from '../shared/permessage-deflate.ts';
import type { DeflateOfferOptions } from '../shared/permessage-deflate.ts';
import type { Disconnect } from './reconnect-policy.ts';

/** TLS for wss:// (and for an https:// proxy): CA, client certificate and key, SNI servername, rejectUnauthorized. */
export type ClientTlsOptions = SecureContextOptions & {
  /** SNI name; default: the URL's host name (none for an IP address: RFC 6066 §3 forbids it). */
  readonly servername?: string;
  readonly rejectUnauthorized?: boolean;
};

/** Our permessage-deflate offer and compressor settings. */
export type ClientDeflateOptions = DeflateOfferOptions & {
  /** Messages smaller than this many bytes are sent uncompressed (default 128). */
  readonly threshold?: number;
  /** zlib level 0–9 (default 1). */
  readonly level?: number;
  /** zlib memLevel 1–9 (default 8). */
  readonly memLevel?: number;
};

export interface ReconnectOptions {
  /** Seconds before the first attempt after a connection is lost (default 1); each further attempt doubles it. */
  readonly minDelay?: number;
  /** Seconds the delay grows to at most (default 30). */
  readonly maxDelay?: number;
  /** Fraction 0–1 of each delay taken off at random, so clients of a restarted server spread out (default 0.5). */
  readonly jitter?: number;
  /** Attempts in a row that fail to open before giving up (default Infinity). */
  readonly maxRetries?: number;
  /** Seconds a connection must stay open for the next loss to start again from `minDelay` (default 5). */
  readonly minUptime?: number;
  /** Decides whether a loss is retried; default `isTransientDisconnect` (reconnect-policy.ts). */
  readonly shouldReconnect?: (disconnect: Disconnect) => boolean;
}

export interface ClientOptions {
  /** Offer permessage-deflate (default true); an object tunes the offer and the compressor. */
  readonly perMessageDeflate?: boolean | ClientDeflateOptions;
  /** Seconds for the whole opening handshake: connect, proxy tunnel, TLS, upgrade and redirects (default 10; 0: no limit). */
  readonly handshakeTimeout?: number;
  /** Seconds to wait for the server to close TCP after the close handshake (default 10). */
  readonly closeTimeout?: number;
  /** Largest message accepted, after inflation (default 16 MiB; 1009 past it). */
  readonly maxPayloadLength?: number;
  /** Extra request headers (Authorization, Cookie…); the handshake's own (Host, Upgrade, Origin, Sec-WebSocket-*) are refused. */
  readonly headers?: OutgoingHeaders;
  /** The Origin header (default: none, as ws; browsers always send their page's origin). */
  readonly origin?: string;
  readonly tls?: ClientTlsOptions;
  /** An HTTP proxy, `http://[user:pass@]host:port` or `https://…`; the connection goes through a CONNECT tunnel. */
  readonly proxy?: string | URL;
  /** TLS options for an https:// proxy (its CA, for one). */
  readonly proxyTls?: ClientTlsOptions;
  /** An http.Agent (https.Agent for wss://) that makes the connection, e.g. a proxy agent; excludes `proxy`. */
  readonly agent?: Agent;
  /** Follow 3xx answers to the upgrade (default false, as browsers). */
  readonly followRedirects?: boolean;
  /**
   * Open the WebSocket on a stream of an HTTP/2 connection (RFC 8441, wss: only), one connection
   * per origin shared by every such WebSocket of the process while it is open (default false).
   * Excludes `proxy` and `agent`.
   */
  readonly http2?: boolean;
  /** Redirects followed at most, with followRedirects (default 10). */
  readonly maxRedirects?: number;
  /** Reconnect after a connection is lost (default false); `true` takes every default of ReconnectOptions. */
  readonly reconnect?: boolean | ReconnectOptions;
}

type ScalarClientOption = 'handshakeTimeout' | 'closeTimeout' | 'maxPayloadLength' | 'followRedirects' | 'maxRedirects' | 'http2';

/** The client's scalar options: defaults and bounds, checked as the server's are (config.ts). */
export const CLIENT_OPTIONS: { readonly [K in ScalarClientOption]: OptionSpec } = {
  handshakeTimeout: { kind: 'seconds', default: 10, max: 120, wasMilliseconds: true, cli: false, doc: 'connect, tunnel, TLS, upgrade and redirects (0: no limit)' },
  closeTimeout: { kind: 'seconds', default: 10, max: 3600, cli: false, doc: 'wait for the server to close TCP after the close handshake' },
  maxPayloadLength: { kind: 'bytes', default: 16 * 1024 * 1024, min: 1, max: 2 ** 31 - 1, cli: false, doc: 'largest message after inflation (1009 past it)' },
  followRedirects: { kind: 'boolean', default: false, cli: false, doc: 'follow 3xx answers to the upgrade' },
  http2: { kind: 'boolean', default: false, cli: false, doc: 'open the WebSocket on a shared HTTP/2 connection (RFC 8441)' },
  maxRedirects: { kind: 'count', default: 10, min: 0, max: 100, cli: false, doc: 'redirects followed at most' },
};

type ScalarReconnectOption = 'minDelay' | 'maxDelay' | 'minUptime';

export const RECONNECT_OPTIONS: { readonly [K in ScalarReconnectOption]: OptionSpec } = {
  minDelay: { kind: 'seconds', default: 1, max: 3600, cli: false, doc: 'delay before the first attempt' },
  maxDelay: { kind: 'seconds', default: 30, max: 86_400, cli: false, doc: 'largest delay' },
  minUptime: { kind: 'seconds', default: 5, max: 86_400, cli: false, doc: 'uptime after which the backoff starts over' },
};
export const DEFAULT_JITTER = 0.5;

const DEFLATE_NUMBERS: Readonly<Record<'threshold' | 'level' | 'memLevel', OptionSpec>> = {
  threshold: { kind: 'bytes', default: DEFAULT_THRESHOLD, min: 0, max: Number.MAX_SAFE_INTEGER, cli: false, doc: '' },
  level: { kind: 'count', default: DEFAULT_LEVEL, min: 0, max: 9, cli: false, doc: '' },
  memLevel: { kind: 'count', default: DEFAULT_MEM_LEVEL, min: 1, max: 9, cli: false, doc: '' },
};

export interface ResolvedReconnect {
  readonly minDelay: number;
  readonly maxDelay: number;
  readonly jitter: number;
  readonly maxRetries: number;
  readonly minUptime: number;
  readonly shouldReconnect: ((disconnect: Disconnect) => boolean) | null;
}

export interface ResolvedDeflate {
  readonly offer: DeflateOfferOptions;
  /** The Sec-WebSocket-Extensions value, formatted once. */
  readonly header: string;
  readonly threshold: number;
  readonly level: number;
  readonly memLevel: number;
}

/** Every option checked, with its default filled in. */
export interface ResolvedClientOptions {
  readonly deflate: ResolvedDeflate | null;
  readonly handshakeTimeout: number;
  readonly closeTimeout: number;
  readonly maxPayloadLength: number;
  readonly headers: OutgoingHeaders;
  readonly origin: string | undefined;
  readonly tls: ClientTlsOptions;
  readonly proxy: URL | null;
  readonly proxyTls: ClientTlsOptions;
  readonly agent: Agent | null;
  readonly followRedirects: boolean;
  readonly maxRedirects: number;
  readonly http2: boolean;
  readonly reconnect: ResolvedReconnect | null;
}

/** A well-formed key, only to check headers with the function that will send them. */
const PROBE_KEY = 'AAAAAAAAAAAAAAAAAAAAAA==';

/** Checks every option and fills in defaults; throws TypeError or RangeError naming the option. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('the client options must be an object');
  const scalar = <K extends ScalarClientOption>(name: K): unknown => optionValue(name, CLIENT_OPTIONS[name], options[name]);
  const headers = checkObject('headers', options.headers);
  // The function that writes them checks them: names, values, and the headers it sets itself.
  probe('origin', { origin: options.origin });
  probe('headers', { headers });
  if (options.agent !== undefined && options.proxy !== undefined) throw new TypeError('options agent and proxy exclude each other: an agent makes its own connections');
  if (options.http2 === true && (options.agent !== undefined || options.proxy !== undefined)) throw new TypeError('option http2 excludes agent and proxy: the HTTP/2 connection is made directly');
  return {
    deflate: resolveDeflate(options.perMessageDeflate),
    handshakeTimeout: scalar('handshakeTimeout') as number,
    closeTimeout: scalar('closeTimeout') as number,
    maxPayloadLength: scalar('maxPayloadLength') as number,
    headers,
    origin: options.origin,
    tls: checkObject('tls', options.tls),
    proxy: resolveProxy(options.proxy),
    proxyTls: checkObject('proxyTls', options.proxyTls),
    agent: options.agent ?? null,
    followRedirects: scalar('followRedirects') as boolean,
    maxRedirects: scalar('maxRedirects') as number,
    http2: scalar('http2') as boolean,
    reconnect: resolveReconnect(options.reconnect),
  };
}

function probe(name: string, fields: { readonly origin?: string | undefined; readonly headers?: OutgoingHeaders }): void {
  try {
    upgradeRequestFields({ host: 'localhost', path: '/', key: PROBE_KEY, ...fields });
  } catch (error) {
    throw new TypeError(`option ${name}: ${(error as Error).message}`);
  }
}

function checkObject<T extends object>(name: string, value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null) throw new TypeError(`option ${name} must be an object`);
  return value;
}

function resolveDeflate(value: ClientOptions['perMessageDeflate']): ResolvedDeflate | null {
  if (value === false) return null;
  const tuning: ClientDeflateOptions = value === undefined || value === true ? { clientMaxWindowBits: true } : checkObject('perMessageDeflate', value);
  const offer: DeflateOfferOptions = {
    clientMaxWindowBits: tuning.clientMaxWindowBits,
    serverMaxWindowBits: tuning.serverMaxWindowBits,
    clientNoContextTakeover: tuning.clientNoContextTakeover,
    serverNoContextTakeover: tuning.serverNoContextTakeover,
  };
  const number = (name: keyof typeof DEFLATE_NUMBERS): number => optionValue(`perMessageDeflate.${name}`, DEFLATE_NUMBERS[name], tuning[name]) as number;
  return { offer, header: buildDeflateOffer(offer), threshold: number('threshold'), level: number('level'), memLevel: number('memLevel') };
}

function resolveProxy(value: string | URL | undefined): URL | null {
  if (value === undefined) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`option proxy must be a URL, got ${JSON.stringify(String(value))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`option proxy must be an http:// or https:// URL, got ${url.protocol}//`);
  return url;
}

function resolveReconnect(value: ClientOptions['reconnect']): ResolvedReconnect | null {
  if (value === undefined || value === false) return null;
  const opts: ReconnectOptions = value === true ? {} : checkObject('reconnect', value);
  const seconds = (name: ScalarReconnectOption): number => optionValue(`reconnect.${name}`, RECONNECT_OPTIONS[name], opts[name]) as number;
  const minDelay = seconds('minDelay');
  const maxDelay = seconds('maxDelay');
  if (maxDelay < minDelay) throw new RangeError('option reconnect.maxDelay must be at least reconnect.minDelay');
  const jitter = opts.jitter ?? DEFAULT_JITTER;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw new RangeError(`option reconnect.jitter must be a fraction from 0 to 1, got ${String(jitter)}`);
  const maxRetries = opts.maxRetries ?? Infinity;
  if (typeof maxRetries !== 'number' || !(maxRetries === Infinity || (Number.isInteger(maxRetries) && maxRetries >= 0))) {
    throw new RangeError(`option reconnect.maxRetries must be a whole number or Infinity, got ${String(maxRetries)}`);
  }
  if (opts.shouldReconnect !== undefined && typeof opts.shouldReconnect !== 'function') throw new TypeError('option reconnect.shouldReconnect must be a function');
  return { minDelay, maxDelay, jitter, maxRetries, minUptime: seconds('minUptime'), shouldReconnect: opts.shouldReconnect ?? null };
}
