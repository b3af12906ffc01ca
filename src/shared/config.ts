import type { WindowBits } from './permessage-deflate.ts';

export type CompressionMode = 'shared' | 'dedicated';
export type SlowClientPolicy = 'close' | 'drop' | 'custom';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface DeflateConfig {
  /** `shared`: server_no_context_takeover, one compressor per worker; `dedicated`: one per connection. */
  readonly mode: CompressionMode;
  /** Messages smaller than this many bytes are sent uncompressed. */
  readonly threshold: number;
  readonly level: number;
  readonly memLevel: number;
  /** Largest window we compress with (dedicated mode; a client may ask for less). */
  readonly serverMaxWindowBits: WindowBits;
}

/**
 * TLS for wss://: the primary still accepts plain TCP; each worker wraps its sockets in TLS.
 * Give files (re-read on reload) or PEM text.
 */
export interface TlsOptions {
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly caFile?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: string;
  readonly passphrase?: string;
}

/** Options of `listen()` and `shardws serve`. Everything but `app` has a default. */
export interface ServerOptions {
  /** Module (path or file: URL) whose default export is the app (see defineApp); default: the demo. */
  readonly app?: string | URL;
  readonly port?: number;
  readonly host?: string;
  readonly backlog?: number;
  readonly workers?: number;
  /** Open connections across all workers; past it new sockets are refused with 503. 0 = no limit. */
  readonly maxConnections?: number;
  /** permessage-deflate: off by default; `true` means shared mode. */
  readonly deflate?: boolean | CompressionMode | Partial<DeflateConfig>;
  /** Largest message, in bytes after inflation (RFC 6455 close 1009 past it). */
  readonly maxPayloadLength?: number;
  /** Seconds without any data from the peer before close 1001; 0 disables. */
  readonly idleTimeout?: number;
  /** Ping a quiet peer halfway through the idle timeout so a live one answers in time. */
  readonly sendPings?: boolean;
  /** Seconds to wait for the peer's close frame (or TCP close) before destroying the socket. */
  readonly closeTimeout?: number;
  /** Bytes queued for one connection beyond which the slow-client policy applies. */
  readonly maxBackpressure?: number;
  /** Above this many buffered bytes `send()` answers 'buffered'; `drain` fires below lowWaterMark. */
  readonly highWaterMark?: number;
  readonly lowWaterMark?: number;
  readonly slowClient?: SlowClientPolicy;
  /** Milliseconds a client has to send a complete upgrade request. */
  readonly handshakeTimeout?: number;
  /** Handshakes in progress per worker; past it new sockets get 503. */
  readonly maxHandshakes?: number;
  readonly maxHeaderSize?: number;
  /** When set, upgrades whose Origin is not listed get 403. */
  readonly origins?: readonly string[];
  /** Path that serves per-worker counters as JSON; empty string disables. */
  readonly statsPath?: string;
  /** Path of the Prometheus text endpoint; empty string (the default) disables. */
  readonly metricsPath?: string;
  /** Path of the JSON health endpoint (200 when every worker beats, else 503); empty disables. */
  readonly healthPath?: string;
  readonly logLevel?: LogLevel;
  /** Milliseconds to wait for close handshakes on shutdown. */
  readonly shutdownGrace?: number;
  /** Serve wss:// (ALPN http/1.1); certificates reload with `server.reloadTls()` or SIGHUP. */
  readonly tls?: TlsOptions;
  /**
   * Each worker's V8 young generation limit, in MiB (Worker `resourceLimits`). V8's own limit
   * grows with the machine's memory (96 MiB on 24 GiB), and a worker grew into ~50 MiB under a
   * burst of handshakes and kept it: 3–4 KiB of RSS per held connection for nothing
   * (docs/performance.md, W5). A fixed size, not a cap: on a host small enough for V8 to pick
   * less than 16 MiB this is more. 0 leaves V8's own sizing.
   */
  readonly workerYoungGenerationMb?: number;
  /** Bytes of the SharedArrayBuffer pool for cross-worker publishes. */
  readonly poolSize?: number;
  /** Published frames of at least this many bytes go through the pool. */
  readonly poolThreshold?: number;
}

export interface ServerConfig {
  readonly app: string | null;
  readonly port: number;
  readonly host: string | undefined;
  readonly backlog: number;
  readonly workers: number;
  readonly maxConnections: number;
  readonly deflate: DeflateConfig | null;
  readonly maxPayloadLength: number;
  readonly idleTimeout: number;
  readonly sendPings: boolean;
  readonly closeTimeout: number;
  readonly maxBackpressure: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly slowClient: SlowClientPolicy;
  readonly handshakeTimeout: number;
  readonly maxHandshakes: number;
  readonly maxHeaderSize: number;
  readonly origins: readonly string[] | null;
  readonly statsPath: string;
  readonly metricsPath: string;
  readonly healthPath: string;
  readonly logLevel: LogLevel;
  readonly shutdownGrace: number;
  readonly poolSize: number;
  readonly poolThreshold: number;
  readonly tls: TlsOptions | null;
  readonly workerYoungGenerationMb: number;
  /** Whether a TopicBridge joins this server to others (listen's `bridge` option). */
  readonly bridged: boolean;
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(name: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function seconds(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`option ${name} must be a number of seconds >= 0, got ${String(value)}`);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) throw new RangeError(`option ${name} must be one of ${allowed.join(', ')}, got ${String(value)}`);
  return value;
}

function resolveDeflate(value: ServerOptions['deflate']): DeflateConfig | null {
  if (value === undefined || value === false) return null;
  const partial: Partial<DeflateConfig> = value === true ? {} : typeof value === 'string' ? { mode: value } : value;
  return {
    mode: oneOf('deflate.mode', partial.mode, ['shared', 'dedicated'], 'shared'),
    threshold: integer('deflate.threshold', partial.threshold, 128, 0),
    level: integer('deflate.level', partial.level, 1, 0, 9),
    memLevel: integer('deflate.memLevel', partial.memLevel, 8, 1, 9),
    serverMaxWindowBits: integer('deflate.serverMaxWindowBits', partial.serverMaxWindowBits, 15, 8, 15) as WindowBits,
  };
}

function resolveTls(tls: TlsOptions | undefined): TlsOptions | null {
  if (tls === undefined) return null;
  if ((tls.cert === undefined) === (tls.certFile === undefined)) throw new TypeError('option tls needs exactly one of cert (PEM) or certFile');
  if ((tls.key === undefined) === (tls.keyFile === undefined)) throw new TypeError('option tls needs exactly one of key (PEM) or keyFile');
  return Object.freeze({ ...tls });
}

/** Validates options once, at startup, into the readonly config every thread works from. */
export function resolveConfig(options: ServerOptions, defaultWorkers: number, bridged = false): ServerConfig {
  const app = options.app === undefined ? null : options.app instanceof URL ? options.app.href : String(options.app);
  const highWaterMark = integer('highWaterMark', options.highWaterMark, 64 * 1024, 1);
  const lowWaterMark = integer('lowWaterMark', options.lowWaterMark, 16 * 1024, 0);
  if (lowWaterMark > highWaterMark) throw new RangeError('option lowWaterMark must not exceed highWaterMark');
  const maxBackpressure = integer('maxBackpressure', options.maxBackpressure, 4 * 1024 * 1024, 1);
  if (maxBackpressure < highWaterMark) throw new RangeError('option maxBackpressure must be at least highWaterMark');
  const path = (name: string, value: string | undefined): string => {
    if (value === undefined || value === '') return '';
    if (typeof value !== 'string' || !value.startsWith('/')) throw new RangeError(`option ${name} must start with "/", got ${String(value)}`);
    return value;
  };
  if (options.origins !== undefined && (!Array.isArray(options.origins) || options.origins.some((o) => typeof o !== 'string'))) {
    throw new TypeError('option origins must be an array of strings');
  }
  return Object.freeze({
    app,
    port: integer('port', options.port, 8080, 0, 65535),
    host: options.host,
    backlog: integer('backlog', options.backlog, 511, 1),
    workers: integer('workers', options.workers, defaultWorkers, 1, 256),
    maxConnections: integer('maxConnections', options.maxConnections, 0, 0),
    deflate: resolveDeflate(options.deflate),
    maxPayloadLength: integer('maxPayloadLength', options.maxPayloadLength, 16 * 1024 * 1024, 1, 2 ** 31 - 1),
    idleTimeout: seconds('idleTimeout', options.idleTimeout, 120),
    sendPings: options.sendPings ?? true,
    closeTimeout: seconds('closeTimeout', options.closeTimeout, 10),
    maxBackpressure,
    highWaterMark,
    lowWaterMark,
    slowClient: oneOf('slowClient', options.slowClient, ['close', 'drop', 'custom'], 'close'),
    handshakeTimeout: integer('handshakeTimeout', options.handshakeTimeout, 10_000, 1),
    maxHandshakes: integer('maxHandshakes', options.maxHandshakes, 4096, 1),
    maxHeaderSize: integer('maxHeaderSize', options.maxHeaderSize, 16 * 1024, 1024),
    origins: options.origins ? Object.freeze([...options.origins]) : null,
    statsPath: path('statsPath', options.statsPath),
    metricsPath: path('metricsPath', options.metricsPath),
    healthPath: path('healthPath', options.healthPath),
    logLevel: oneOf('logLevel', options.logLevel, LOG_LEVELS, 'info'),
    shutdownGrace: integer('shutdownGrace', options.shutdownGrace, 10_000, 0),
    poolSize: integer('poolSize', options.poolSize, 16 * 1024 * 1024, 64 * 1024),
    poolThreshold: integer('poolThreshold', options.poolThreshold, 16 * 1024, 1),
    tls: resolveTls(options.tls),
    workerYoungGenerationMb: integer('workerYoungGenerationMb', options.workerYoungGenerationMb, 16, 0, 1024),
    bridged,
  });
}
