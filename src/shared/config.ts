/**
 * Server options: one table (OPTIONS) holds each option's default, unit, bounds and one-line
 * description. `resolveConfig` validates `listen()` options against it once, at startup, and
 * the CLI builds its flags, their help and their validation from the same table, so a default
 * or a limit is written down in one place.
 *
 * Units: every duration is in seconds (fractions allowed), every size in bytes.
 */
import type { WindowBits } from './permessage-deflate.ts';
import { DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, DEFAULT_THRESHOLD } from './permessage-deflate.ts';

export type CompressionMode = 'shared' | 'dedicated';
export type SlowClientPolicy = 'close' | 'drop' | 'custom';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** `plain`: at-most-once, local publishes delivered at once; `durable`: every delivery through the broker, with ids. */
export type BridgeKind = 'plain' | 'durable';

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

/** Options of `listen()` and `shardws serve`. Everything but `app` has a default (see OPTIONS). */
export interface ServerOptions {
  /** Module (path or file: URL) whose default export is the app (see defineApp); default: the demo. */
  readonly app?: string | URL;
  readonly port?: number;
  readonly host?: string;
  /** Pending connections the kernel queues before accept(). */
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
  /** Seconds a client has to send a complete upgrade request (and finish TLS). */
  readonly handshakeTimeout?: number;
  /** Handshakes in progress per worker; past it new sockets get 503. */
  readonly maxHandshakes?: number;
  /** Bytes of request head a client may send (431 past it). */
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
  /** Seconds to wait for close handshakes on shutdown. */
  readonly shutdownGrace?: number;
  /** Seconds without a heartbeat after which a worker is deemed hung and replaced. */
  readonly heartbeatTimeout?: number;
  /** Serve wss:// (ALPN http/1.1); certificates reload with `server.reloadTls()` or SIGHUP. */
  readonly tls?: TlsOptions;
  /**
   * Bytes of each worker's V8 young generation (Worker `resourceLimits`, in whole MiB). V8's own
   * size grows with the machine's memory (96 MiB on 24 GiB), and a worker grew into ~50 MiB under
   * a burst of handshakes and kept it: 3–4 KiB of RSS per held connection for nothing
   * (docs/performance.md, W5). A fixed size, not a cap: on a host small enough for V8 to pick
   * less, this is more. 0 leaves V8's own sizing.
   */
  readonly workerYoungGenerationSize?: number;
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
  readonly heartbeatTimeout: number;
  readonly poolSize: number;
  readonly poolThreshold: number;
  readonly tls: TlsOptions | null;
  readonly workerYoungGenerationSize: number;
  /** Whether a topic bridge joins this server to others (listen's `bridge` option), and which kind. */
  readonly bridged: false | BridgeKind;
}

// ---- the option table ------------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * How an option's value is read and checked. `cli`: the placeholder of its `shardws serve` flag
 * ('' for an on/off flag), or false for no flag.
 */
export type OptionSpec = { readonly doc: string; readonly cli: string | false } & (
  | { readonly kind: 'count'; readonly default: number; readonly min: number; readonly max: number }
  | { readonly kind: 'bytes'; readonly default: number; readonly min: number; readonly max: number }
  | { readonly kind: 'seconds'; readonly default: number; readonly max: number; readonly wasMilliseconds?: true }
  | { readonly kind: 'choice'; readonly default: string; readonly values: readonly string[] }
  | { readonly kind: 'path'; readonly default: string; readonly cliDefault?: string }
  | { readonly kind: 'boolean'; readonly default: boolean }
  | { readonly kind: 'text'; readonly default: string | undefined }
);

/** Workers one server runs at most (the pool's holder bitmask and the counters are sized by it). */
export const MAX_WORKERS = 256;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Options with one scalar value, in the order `shardws serve --help` lists them. */
type ScalarOption = Exclude<keyof ServerOptions, 'app' | 'deflate' | 'tls' | 'origins'>;

export const OPTIONS: { readonly [K in ScalarOption]: OptionSpec } = {
  port: { kind: 'count', default: 8080, min: 0, max: 65535, cli: 'N', doc: 'TCP port (0 picks a free one)' },
  host: { kind: 'text', default: undefined, cli: 'ADDR', doc: 'address to listen on (default: all, IPv4 and IPv6)' },
  workers: { kind: 'count', default: 1, min: 1, max: MAX_WORKERS, cli: 'N', doc: 'worker threads (default: one per core, at most 256)' },
  backlog: { kind: 'count', default: 511, min: 1, max: 65535, cli: 'N', doc: 'pending connections the kernel queues before accept()' },
  maxConnections: { kind: 'count', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, cli: 'N', doc: 'refuse new sockets with 503 past N open connections (0: no limit)' },
  maxPayloadLength: { kind: 'bytes', default: 16 * MiB, min: 1, max: 2 ** 31 - 1, cli: 'BYTES', doc: 'largest message after inflation (1009 past it)' },
  idleTimeout: { kind: 'seconds', default: 120, max: 86_400, cli: 'SECS', doc: 'close quiet connections with 1001 (0 disables)' },
  sendPings: { kind: 'boolean', default: true, cli: '', doc: 'ping a quiet peer halfway through the idle timeout' },
  closeTimeout: { kind: 'seconds', default: 10, max: 3600, cli: 'SECS', doc: 'wait for the peer to finish the close handshake' },
  maxBackpressure: { kind: 'bytes', default: 4 * MiB, min: 1, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: 'bytes queued per connection before the slow-client policy applies' },
  highWaterMark: { kind: 'bytes', default: 64 * KiB, min: 1, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: "buffered bytes above which send() answers 'buffered'" },
  lowWaterMark: { kind: 'bytes', default: 16 * KiB, min: 0, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: 'buffered bytes at which drain fires' },
  slowClient: { kind: 'choice', default: 'close', values: ['close', 'drop', 'custom'], cli: 'POLICY', doc: 'past maxBackpressure: close (1008), drop, or custom (the app decides)' },
  handshakeTimeout: { kind: 'seconds', default: 10, max: 120, wasMilliseconds: true, cli: 'SECS', doc: 'time a client has for TLS and its upgrade request' },
  maxHandshakes: { kind: 'count', default: 4096, min: 1, max: Number.MAX_SAFE_INTEGER, cli: 'N', doc: 'handshakes in progress per worker before 503' },
  maxHeaderSize: { kind: 'bytes', default: 16 * KiB, min: KiB, max: MiB, cli: 'BYTES', doc: 'largest upgrade request head (431 past it)' },
  statsPath: { kind: 'path', default: '', cliDefault: '/stats', cli: 'PATH', doc: 'serve per-worker counters as JSON at PATH' },
  metricsPath: { kind: 'path', default: '', cli: 'PATH', doc: 'serve Prometheus metrics at PATH' },
  healthPath: { kind: 'path', default: '', cliDefault: '/health', cli: 'PATH', doc: 'serve a JSON health check at PATH' },
  logLevel: { kind: 'choice', default: 'info', values: LOG_LEVELS, cli: 'LEVEL', doc: 'log level' },
  shutdownGrace: { kind: 'seconds', default: 10, max: 300, wasMilliseconds: true, cli: 'SECS', doc: 'time connections get to close on shutdown' },
  heartbeatTimeout: { kind: 'seconds', default: 10, max: 300, wasMilliseconds: true, cli: 'SECS', doc: 'replace a worker whose heartbeat is this late' },
  workerYoungGenerationSize: { kind: 'bytes', default: 16 * MiB, min: 0, max: 1024 * MiB, cli: 'BYTES', doc: "each worker's V8 young generation (whole MiB; 0: V8 decides)" },
  poolSize: { kind: 'bytes', default: 16 * MiB, min: 64 * KiB, max: 2 ** 31 - 1, cli: 'BYTES', doc: 'shared pool for large cross-worker publishes' },
  poolThreshold: { kind: 'bytes', default: 16 * KiB, min: 1, max: 2 ** 31 - 1, cli: 'BYTES', doc: 'published frames this large go through the pool' },
};

/**
 * The scalar options of `redisBridge()` (shardws/redis), which `shardws serve` turns into its
 * `--redis-*` flags like the table above. Not listen() options: a bridge is built from them.
 */
export const REDIS_OPTIONS = {
  redisStreams: { kind: 'boolean', default: false, cli: '', doc: 'with --redis: the durable mode on Redis Streams (message ids, recovery, outage buffer)' },
  redisRetention: { kind: 'count', default: 10_000, min: 1, max: 2 ** 31 - 1, cli: 'N', doc: "streams mode: messages each topic's stream keeps, at least (MAXLEN ~)" },
  redisMaxAge: { kind: 'seconds', default: 0, max: 365 * 86_400, cli: 'SECS', doc: 'streams mode: keep a time window instead of a count (MINID ~; 0: use the count)' },
  redisOutageBuffer: { kind: 'bytes', default: 16 * MiB, min: 0, max: 2 ** 31 - 1, cli: 'BYTES', doc: 'streams mode: bytes of publishes kept while Redis is unreachable (the oldest go past it)' },
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** Options renamed or changed in unit: a value under the old name fails with how to move. */
const RENAMED: Readonly<Record<string, string>> = {
  workerYoungGenerationMb: 'workerYoungGenerationSize (bytes, e.g. 16 * 1024 * 1024)',
};

/** Defaults of the deflate option when it is on. */
export const DEFLATE_DEFAULTS: DeflateConfig = Object.freeze({
  mode: 'shared',
  threshold: DEFAULT_THRESHOLD,
  level: DEFAULT_LEVEL,
  memLevel: DEFAULT_MEM_LEVEL,
  serverMaxWindowBits: 15,
});

// ---- validation --------------------------------------------------------------------------

/** Checks one scalar option against its spec; returns the default when it is undefined. */
export function optionValue(name: string, spec: OptionSpec, value: unknown): unknown {
  if (value === undefined) return spec.default;
  switch (spec.kind) {
    case 'count':
    case 'bytes':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        throw new RangeError(`option ${name} must be an integer from ${spec.min} to ${spec.max}${spec.kind === 'bytes' ? ' (bytes)' : ''}, got ${String(value)}`);
      }
      return value;
    case 'seconds':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > spec.max) {
        const hint = spec.wasMilliseconds && typeof value === 'number' && value > spec.max ? ` (it is in seconds now, no longer milliseconds)` : '';
        throw new RangeError(`option ${name} must be a number of seconds from 0 to ${spec.max}, got ${String(value)}${hint}`);
      }
      return value;
    case 'choice':
      if (typeof value !== 'string' || !spec.values.includes(value)) throw new RangeError(`option ${name} must be one of ${spec.values.join(', ')}, got ${String(value)}`);
      return value;
    case 'path':
      if (value === '') return '';
      if (typeof value !== 'string' || !value.startsWith('/')) throw new RangeError(`option ${name} must start with "/", got ${String(value)}`);
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw new TypeError(`option ${name} must be true or false, got ${String(value)}`);
      return value;
    case 'text':
      if (typeof value !== 'string') throw new TypeError(`option ${name} must be a string, got ${String(value)}`);
      return value;
  }
}

function resolveDeflate(value: ServerOptions['deflate']): DeflateConfig | null {
  if (value === undefined || value === false) return null;
  const partial: Partial<DeflateConfig> = value === true ? {} : typeof value === 'string' ? { mode: value } : value;
  const d = DEFLATE_DEFAULTS;
  const int = (name: string, v: number | undefined, fallback: number, min: number, max: number): number =>
    optionValue(`deflate.${name}`, { kind: 'count', default: fallback, min, max, cli: false, doc: '' }, v) as number;
  return Object.freeze({
    mode: optionValue('deflate.mode', { kind: 'choice', default: d.mode, values: ['shared', 'dedicated'], cli: false, doc: '' }, partial.mode) as CompressionMode,
    threshold: int('threshold', partial.threshold, d.threshold, 0, Number.MAX_SAFE_INTEGER),
    level: int('level', partial.level, d.level, 0, 9),
    memLevel: int('memLevel', partial.memLevel, d.memLevel, 1, 9),
    serverMaxWindowBits: int('serverMaxWindowBits', partial.serverMaxWindowBits, d.serverMaxWindowBits, 8, 15) as WindowBits,
  });
}

function resolveTls(tls: TlsOptions | undefined): TlsOptions | null {
  if (tls === undefined) return null;
  if ((tls.cert === undefined) === (tls.certFile === undefined)) throw new TypeError('option tls needs exactly one of cert (PEM) or certFile');
  if ((tls.key === undefined) === (tls.keyFile === undefined)) throw new TypeError('option tls needs exactly one of key (PEM) or keyFile');
  return Object.freeze({ ...tls });
}

/** Validates options once, at startup, into the readonly config every thread works from. */
export function resolveConfig(options: ServerOptions, defaultWorkers: number, bridged: false | BridgeKind = false): ServerConfig {
  for (const old of Object.keys(RENAMED)) {
    if (old in options) throw new TypeError(`option ${old} was replaced by ${RENAMED[old]}`);
  }
  const scalars: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(OPTIONS) as [ScalarOption, OptionSpec][]) {
    scalars[name] = optionValue(name, spec, options[name]);
  }
  // One per core by default, on a host of any size.
  if (options.workers === undefined) scalars.workers = Math.max(1, Math.min(MAX_WORKERS, Math.floor(defaultWorkers)));
  const values = scalars as Omit<ServerConfig, 'app' | 'deflate' | 'tls' | 'origins' | 'bridged'>;
  if (values.lowWaterMark > values.highWaterMark) throw new RangeError('option lowWaterMark must not exceed highWaterMark');
  if (values.maxBackpressure < values.highWaterMark) throw new RangeError('option maxBackpressure must be at least highWaterMark');
  if (options.origins !== undefined && (!Array.isArray(options.origins) || options.origins.some((o) => typeof o !== 'string'))) {
    throw new TypeError('option origins must be an array of strings');
  }
  return Object.freeze({
    ...values,
    app: options.app === undefined ? null : options.app instanceof URL ? options.app.href : String(options.app),
    deflate: resolveDeflate(options.deflate),
    tls: resolveTls(options.tls),
    origins: options.origins ? Object.freeze([...options.origins]) : null,
    bridged,
  });
}
