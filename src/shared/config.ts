/**
 * Server options: one table (OPTIONS) holds each option's default, unit, bounds and one-line
 * description. `resolveConfig` validates `listen()` options against it once, at startup, and
 * the CLI builds its flags, their help and their validation from the same table, so a default
 * or a limit is written down in one place.
 *
 * Units: every duration is in seconds (fractions allowed), every size in bytes.
 */
import type { ProxyTarget } from './app.ts';
import type { DeflateSide, WindowBits } from './permessage-deflate.ts';
import { DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, DEFAULT_THRESHOLD } from './permessage-deflate.ts';
import { resolveProxyTarget } from './proxy-target.ts';
import type { ResolvedProxyTarget } from './proxy-target.ts';

export type { DeflateSide } from './permessage-deflate.ts';
/** The two presets `deflate` has always taken (shared is what `deflate: true` means). */
export type CompressionMode = 'shared' | 'dedicated';
/**
 * Named compression settings (DEFLATE_PRESETS). uWebSockets.js users: `shared` is
 * SHARED_COMPRESSOR | SHARED_DECOMPRESSOR, `dedicated` DEDICATED_COMPRESSOR |
 * DEDICATED_DECOMPRESSOR, `dedicated-compressor` DEDICATED_COMPRESSOR | SHARED_DECOMPRESSOR,
 * `dedicated-compressor-small` the settings of DEDICATED_COMPRESSOR_4KB | SHARED_DECOMPRESSOR
 * (which cost far more than 4 KiB in Node: docs/operations.md).
 */
export type DeflatePreset = CompressionMode | 'dedicated-compressor' | 'dedicated-compressor-small';
export type SlowClientPolicy = 'close' | 'drop' | 'custom';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** `plain`: at-most-once, local publishes delivered at once; `durable`: every delivery through the broker, with ids. */
export type BridgeKind = 'plain' | 'durable';
/** `pretty`: one readable line per record, for people; `json`: one JSON object per line (pino); `auto`: pretty when stdout is a terminal. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * The `deflate` option as an object: a preset, then any field changed from it. The names of
 * ws's perMessageDeflate options are taken too: `serverNoContextTakeover: true` is
 * `compressor: 'shared'`, `clientNoContextTakeover: true` is `decompressor: 'shared'` (giving
 * both names with different answers is an error).
 */
export interface DeflateOptions {
  /** Where the other fields start from. Default 'shared'. */
  readonly preset?: DeflatePreset;
  /** The old name of `preset` (0.1), for 'shared' and 'dedicated'. */
  readonly mode?: CompressionMode;
  /**
   * Server→client. 'shared': one compressor per worker, reset after every message
   * (server_no_context_takeover), so a connection holds no compressor and a broadcast is
   * compressed once. 'dedicated': each connection's own, keeping context between messages
   * (better ratios; its zlib state per connection, see docs/operations.md).
   */
  readonly compressor?: DeflateSide;
  /**
   * Client→server. 'shared': clients are asked for client_no_context_takeover and one inflater
   * per worker reads them all. 'dedicated': a client may keep context; the connection holds
   * the client's window (2^clientMaxWindowBits bytes plus zlib's ~7 KiB).
   */
  readonly decompressor?: DeflateSide;
  readonly serverNoContextTakeover?: boolean;
  readonly clientNoContextTakeover?: boolean;
  /** The compressor's window, 8–15 (a client may ask for less). */
  readonly serverMaxWindowBits?: WindowBits;
  /**
   * The largest window a client may compress with, 8–15. Below 15 it is answered to clients
   * that offer client_max_window_bits (RFC 7692 §7.1.2.2); the others are asked for
   * client_no_context_takeover instead.
   */
  readonly clientMaxWindowBits?: WindowBits;
  /** zlib level 0–9 (default 1: see DEFAULT_LEVEL). */
  readonly level?: number;
  /** zlib memLevel 1–9: the compressor's hash table, 2^(memLevel+9) bytes. */
  readonly memLevel?: number;
  /** Messages smaller than this many bytes are sent uncompressed (default 128). */
  readonly threshold?: number;
}

/** The `deflate` option resolved: every field set, checked once at startup. */
export interface DeflateConfig {
  /** The preset the settings started from (for logs; the fields below are what counts). */
  readonly preset: DeflatePreset;
  readonly compressor: DeflateSide;
  readonly decompressor: DeflateSide;
  readonly serverMaxWindowBits: WindowBits;
  readonly clientMaxWindowBits: WindowBits;
  readonly level: number;
  readonly memLevel: number;
  /** Messages smaller than this many bytes are sent uncompressed. */
  readonly threshold: number;
}

/**
 * TLS for wss://: the primary still accepts plain TCP; each worker wraps its sockets in TLS.
 * Give files (re-read on reload) or PEM text.
 */
export interface TlsOptions extends TlsCertificate {
  /** CA certificates: sent with the certificate, and the ones client certificates must chain to. */
  readonly caFile?: string;
  readonly ca?: string;
  /**
   * Certificates by server name (SNI, RFC 6066 §3): `'a.example'`, or `'*.example'` for one
   * label under it. A client that names none of them gets the default (`cert`/`key`).
   */
  readonly sni?: Readonly<Record<string, TlsCertificate>>;
  /** Ask clients for a certificate (mTLS); `upgrade(req)` sees it in `req.tls`. */
  readonly requestCert?: boolean;
  /** With requestCert: refuse, in the TLS handshake, a client without a certificate that chains to `ca` (default true). */
  readonly rejectUnauthorized?: boolean;
}

/** One certificate and its key, as files (re-read on reload) or PEM text. */
export interface TlsCertificate {
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly passphrase?: string;
}

/** What a route may set for itself; the rest is the server's. */
export interface RouteOptions {
  /** Module whose default export is the route's app (as `app`); or `proxy` instead. */
  readonly app?: string | URL;
  /** Proxies every upgrade on the route (as if its app's `upgrade` returned `{ proxy }`). */
  readonly proxy?: ProxyTarget;
  readonly deflate?: ServerOptions['deflate'];
  readonly maxPayloadLength?: number;
  readonly maxBackpressure?: number;
  readonly highWaterMark?: number;
  readonly lowWaterMark?: number;
  readonly slowClient?: SlowClientPolicy;
  readonly origins?: readonly string[];
}

/** The options a route can set, resolved (the server's own values where it sets none). */
export interface RouteSettings {
  readonly deflate: DeflateConfig | null;
  readonly maxPayloadLength: number;
  readonly maxBackpressure: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly slowClient: SlowClientPolicy;
  readonly origins: readonly string[] | null;
}

export interface RouteConfig extends RouteSettings {
  /** `/chat` (that path) or `/chat/*` (it and everything under it). */
  readonly pattern: string;
  readonly app: string | null;
  readonly proxy: ResolvedProxyTarget | null;
}

/** Options of `listen()` and `shardws serve`. Everything but `app` has a default (see OPTIONS). */
export interface ServerOptions {
  /** Module (path or file: URL) whose default export is the app (see defineApp); default: the demo. */
  readonly app?: string | URL;
  /**
   * Configuration for the app, given to its `start(shard, appOptions)` in every worker: plain
   * data that survives structuredClone (each worker gets its own copy). `--app-options JSON`.
   */
  readonly appOptions?: unknown;
  readonly port?: number;
  readonly host?: string;
  /** Pending connections the kernel queues before accept(). */
  readonly backlog?: number;
  /** How connections reach the workers (AcceptChoice): 'auto' (default), 'transfer' or 'reuseport'. */
  readonly accept?: AcceptChoice;
  readonly workers?: number;
  /** Open connections across all workers; past it new sockets are refused with 503. 0 = no limit. */
  readonly maxConnections?: number;
  /**
   * permessage-deflate: off by default; `true` is the 'shared' preset; a preset name
   * (DEFLATE_PRESETS); or an object (DeflateOptions) for every setting.
   */
  readonly deflate?: boolean | DeflatePreset | DeflateOptions;
  /** Largest message, in bytes after inflation (RFC 6455 close 1009 past it). */
  readonly maxPayloadLength?: number;
  /** Largest payload of one received data frame (1009 past it); 0: the message limit. */
  readonly maxFrameSize?: number;
  /** Most frames a received message may arrive in (1009 past it); 0: no count limit. */
  readonly maxFragments?: number;
  /** Take text messages and close reasons unchecked (trusted peers only: the app gets what they send). */
  readonly skipUtf8Validation?: boolean;
  /** Seconds without any data from the peer before close 1001; 0 disables. */
  readonly idleTimeout?: number;
  /** Ping a quiet peer halfway through the idle timeout so a live one answers in time. */
  readonly sendPings?: boolean;
  /** Answer pings with a pong; false leaves it to the app's `ping` handler (`ws.pong`). */
  readonly autoPong?: boolean;
  /** Seconds to wait for the peer's close frame (or TCP close) before destroying the socket. */
  readonly closeTimeout?: number;
  /** Bytes queued for one connection beyond which the slow-client policy applies. */
  readonly maxBackpressure?: number;
  /** Above this many buffered bytes `send()` answers 'buffered'; `drain` fires below lowWaterMark. */
  readonly highWaterMark?: number;
  readonly lowWaterMark?: number;
  readonly slowClient?: SlowClientPolicy;
  /** Seconds a connection may stay backlogged (a send said 'buffered' and it has not drained) before the slow-client policy applies; 0 disables. */
  readonly slowClientTimeout?: number;
  /** Seconds a client has to send a complete upgrade request (and finish TLS). */
  readonly handshakeTimeout?: number;
  /** Handshakes in progress per worker; past it new sockets get 503. */
  readonly maxHandshakes?: number;
  /** Bytes of request head a client may send (431 past it). */
  readonly maxHeaderSize?: number;
  /** When set, upgrades whose Origin is not listed get 403. */
  readonly origins?: readonly string[];
  /**
   * Port of the admin listener, which serves /metrics, /stats and /health from the primary, apart
   * from the clients' port; null (the default) for none, 0 for a free one.
   */
  readonly adminPort?: number | null;
  /** Address of the admin listener; localhost by default, so that only this machine reaches it. */
  readonly adminHost?: string;
  /** Path on the clients' port that serves per-worker counters as JSON; empty string (the default) disables. */
  readonly statsPath?: string;
  /** Path of the Prometheus text endpoint; empty string (the default) disables. */
  readonly metricsPath?: string;
  /** Path of the JSON health endpoint (200 when every worker beats, else 503); empty disables. */
  readonly healthPath?: string;
  readonly logLevel?: LogLevel;
  readonly logFormat?: LogFormat;
  /** Seconds to wait for close handshakes on shutdown. */
  readonly shutdownGrace?: number;
  /** Seconds without a heartbeat after which a worker is deemed hung and replaced. */
  readonly heartbeatTimeout?: number;
  /** Seconds after which a connection is closed with 1001 (less up to 20% at random) so that it reconnects and rebalances; 0 disables. */
  readonly maxLifetime?: number;
  /** Topics and tags counted across workers at once (the shared presence table's buckets). */
  readonly presenceCapacity?: number;
  /** Serve wss:// (ALPN http/1.1); certificates reload with `server.reloadTls()` or SIGHUP. */
  readonly tls?: TlsOptions;
  /** Listen on this Unix domain socket instead of a TCP port. */
  readonly path?: string;
  /** Every connection starts with a PROXY protocol v1 or v2 header (HAProxy, AWS NLB); off by default. */
  readonly proxyProtocol?: boolean;
  /**
   * With `tls`: offer HTTP/2 by ALPN beside HTTP/1.1, and take WebSockets over HTTP/2 streams
   * (RFC 8441 extended CONNECT) on the same port. Off by default.
   */
  readonly http2?: boolean;
  /** With `http2`: WebSockets (streams) one HTTP/2 connection may carry at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly http2MaxStreams?: number;
  /**
   * Apps by path: `{ '/chat': './chat.ts', '/feed': { app: './feed.ts', deflate: true } }`. A
   * request goes to the pattern it matches most closely (an exact path, then the longest wildcard
   * stem), else to `app` (404 without one).
   */
  readonly routes?: Readonly<Record<string, string | URL | RouteOptions>>;
  /** A gateway: every upgrade not taken by a route is proxied here (instead of an `app`). */
  readonly proxy?: ProxyTarget;
  /**
   * Bytes of each worker's V8 young generation (Worker `resourceLimits`, in whole MiB). V8's own
   * size grows with the machine's memory (96 MiB on 24 GiB), and a worker grew into ~50 MiB under
   * a burst of handshakes and kept it: 3–4 KiB of RSS per held connection for nothing
   * (docs/performance.md, W5). A fixed size, not a cap: on a host small enough for V8 to pick
   * less, this is more. 0 leaves V8's own sizing.
   */
  readonly workerYoungGenerationSize?: number;
  /**
   * How far V8 lets a heap grow past what survived a full collection before it starts the next,
   * in percent (V8's `--heap-growing-percent`: 300 is a factor of 4, V8's own maximum). Without
   * it V8 picks the factor from its collection speed, and a worker compressing at full load could
   * settle on a small one and then mark its old generation ten times a second (W3: 45–52 against
   * 37–40 µs of CPU per message; docs/performance.md). A process-wide V8 flag, set when the
   * server starts unless node was started with it; 0 gives V8 its own heuristics.
   */
  readonly heapGrowingPercent?: number;
  /** Bytes of the SharedArrayBuffer pool for cross-worker publishes. */
  readonly poolSize?: number;
  /** Published frames of at least this many bytes go through the pool. */
  readonly poolThreshold?: number;
}

export interface ServerConfig {
  readonly app: string | null;
  readonly appOptions: unknown;
  readonly port: number;
  readonly host: string | undefined;
  readonly backlog: number;
  readonly accept: AcceptChoice;
  readonly workers: number;
  readonly maxConnections: number;
  readonly deflate: DeflateConfig | null;
  readonly maxPayloadLength: number;
  readonly maxFrameSize: number;
  readonly maxFragments: number;
  readonly skipUtf8Validation: boolean;
  readonly idleTimeout: number;
  readonly sendPings: boolean;
  readonly autoPong: boolean;
  readonly closeTimeout: number;
  readonly maxBackpressure: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly slowClient: SlowClientPolicy;
  readonly slowClientTimeout: number;
  readonly handshakeTimeout: number;
  readonly maxHandshakes: number;
  readonly maxHeaderSize: number;
  readonly origins: readonly string[] | null;
  readonly adminPort: number | null;
  readonly adminHost: string;
  readonly statsPath: string;
  readonly metricsPath: string;
  readonly healthPath: string;
  readonly logLevel: LogLevel;
  /** `auto` is decided by listen() from the primary's stdout before any worker starts. */
  readonly logFormat: Exclude<LogFormat, 'auto'>;
  readonly shutdownGrace: number;
  readonly heartbeatTimeout: number;
  readonly maxLifetime: number;
  readonly presenceCapacity: number;
  readonly poolSize: number;
  readonly poolThreshold: number;
  readonly tls: TlsOptions | null;
  readonly path: string | undefined;
  readonly proxyProtocol: boolean;
  readonly http2: boolean;
  readonly http2MaxStreams: number;
  readonly routes: readonly RouteConfig[];
  readonly proxy: ResolvedProxyTarget | null;
  readonly workerYoungGenerationSize: number;
  readonly heapGrowingPercent: number;
  /** Whether a topic bridge joins this server to others (listen's `bridge` option), and which kind. */
  readonly bridged: false | BridgeKind;
  /** Whether a ClusterDirectory joins this server's connections and counts to others' (listen's `cluster` option). */
  readonly clustered: boolean;
}

// ---- the option table ------------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * KiB;

/** V8's growing factor 4, its own maximum (`heapGrowingPercent`; the load generator uses it too). */
export const DEFAULT_HEAP_GROWING_PERCENT = 300;

/**
 * How an option's value is read and checked. `cli`: the placeholder of its `shardws serve` flag
 * ('' for an on/off flag), or false for no flag.
 */
export type OptionSpec = { readonly doc: string; readonly cli: string | false } & (
  | { readonly kind: 'count'; readonly default: number; readonly min: number; readonly max: number }
  | { readonly kind: 'bytes'; readonly default: number; readonly min: number; readonly max: number }
  | { readonly kind: 'seconds'; readonly default: number; readonly max: number; readonly wasMilliseconds?: true }
  | { readonly kind: 'choice'; readonly default: string; readonly values: readonly string[] }
  | { readonly kind: 'path'; readonly default: string }
  /** A TCP port, or null for no listener at all. */
  | { readonly kind: 'port'; readonly default: number | null }
  | { readonly kind: 'boolean'; readonly default: boolean }
  | { readonly kind: 'text'; readonly default: string | undefined }
);

/**
 * How connections reach the workers. 'transfer' (Node >= 26.6): the primary accepts and hands each
 * socket to the least-loaded worker. 'reuseport' (Linux): every worker listens on the port with
 * SO_REUSEPORT and the kernel picks one by a hash of the addresses, not by load; no socket passes
 * through the primary, which saves its allocation and a transfer per connection. 'auto': transfer
 * where this Node can, else reuseport.
 */
const ACCEPT_CHOICES = ['auto', 'transfer', 'reuseport'] as const;
export type AcceptChoice = (typeof ACCEPT_CHOICES)[number];

/** Workers one server runs at most (the pool's holder bitmask and the counters are sized by it). */
export const MAX_WORKERS = 256;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Options with one scalar value, in the order `shardws serve --help` lists them. */
type ScalarOption = Exclude<keyof ServerOptions, 'app' | 'appOptions' | 'deflate' | 'tls' | 'origins' | 'routes' | 'proxy'>;

export const OPTIONS: { readonly [K in ScalarOption]: OptionSpec } = {
  port: { kind: 'count', default: 8080, min: 0, max: 65535, cli: 'N', doc: 'TCP port (0 picks a free one)' },
  host: { kind: 'text', default: undefined, cli: 'ADDR', doc: 'address to listen on (default: all, IPv4 and IPv6)' },
  path: { kind: 'text', default: undefined, cli: 'PATH', doc: 'listen on this Unix domain socket instead of a TCP port (default off)' },
  proxyProtocol: { kind: 'boolean', default: false, cli: '', doc: 'expect a PROXY protocol v1/v2 header on every connection; close those without' },
  http2: { kind: 'boolean', default: false, cli: '', doc: 'with TLS, also take WebSockets over HTTP/2 (RFC 8441) on the same port' },
  http2MaxStreams: { kind: 'count', default: 100, min: 1, max: 2 ** 31 - 1, cli: 'N', doc: 'WebSockets one HTTP/2 connection may carry at once' },
  workers: { kind: 'count', default: 1, min: 1, max: MAX_WORKERS, cli: 'N', doc: 'worker threads (default: one per core, at most 256)' },
  accept: { kind: 'choice', default: 'auto', values: ACCEPT_CHOICES, cli: 'MODE', doc: 'how sockets reach workers: transfer (the primary picks the least loaded), reuseport (Linux: each worker accepts, the kernel spreads; less memory per connection), auto: transfer where Node can' },
  backlog: { kind: 'count', default: 511, min: 1, max: 65535, cli: 'N', doc: 'pending connections the kernel queues before accept()' },
  maxConnections: { kind: 'count', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, cli: 'N', doc: 'refuse new sockets with 503 past N open connections (0: no limit)' },
  maxPayloadLength: { kind: 'bytes', default: 16 * MiB, min: 1, max: 2 ** 31 - 1, cli: 'BYTES', doc: 'largest message after inflation (1009 past it)' },
  maxFrameSize: { kind: 'bytes', default: 0, min: 0, max: 2 ** 31 - 1, cli: 'BYTES', doc: 'largest payload of one received frame (1009 past it; 0: the message limit)' },
  maxFragments: { kind: 'count', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, cli: 'N', doc: 'most frames one received message may take (1009 past it; 0: no count)' },
  skipUtf8Validation: { kind: 'boolean', default: false, cli: '', doc: 'take text and close reasons unchecked (trusted peers only)' },
  idleTimeout: { kind: 'seconds', default: 120, max: 86_400, cli: 'SECS', doc: 'close quiet connections with 1001 (0 disables)' },
  sendPings: { kind: 'boolean', default: true, cli: '', doc: 'ping a quiet peer halfway through the idle timeout' },
  autoPong: { kind: 'boolean', default: true, cli: '', doc: "answer pings (off: the app's ping handler calls ws.pong)" },
  closeTimeout: { kind: 'seconds', default: 10, max: 3600, cli: 'SECS', doc: 'wait for the peer to finish the close handshake' },
  maxBackpressure: { kind: 'bytes', default: 4 * MiB, min: 1, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: 'bytes queued per connection before the slow-client policy applies' },
  highWaterMark: { kind: 'bytes', default: 64 * KiB, min: 1, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: "buffered bytes above which send() answers 'buffered'" },
  lowWaterMark: { kind: 'bytes', default: 16 * KiB, min: 0, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: 'buffered bytes at which drain fires' },
  slowClient: { kind: 'choice', default: 'close', values: ['close', 'drop', 'custom'], cli: 'POLICY', doc: 'past maxBackpressure: close (1008), drop, or custom (the app decides)' },
  slowClientTimeout: { kind: 'seconds', default: 0, max: 3600, cli: 'SECS', doc: 'apply the slow-client policy to a connection backlogged this long (0 disables)' },
  handshakeTimeout: { kind: 'seconds', default: 10, max: 120, wasMilliseconds: true, cli: 'SECS', doc: 'time a client has for TLS and its upgrade request' },
  maxHandshakes: { kind: 'count', default: 4096, min: 1, max: Number.MAX_SAFE_INTEGER, cli: 'N', doc: 'handshakes in progress per worker before 503' },
  maxHeaderSize: { kind: 'bytes', default: 16 * KiB, min: KiB, max: MiB, cli: 'BYTES', doc: 'largest upgrade request head (431 past it)' },
  adminPort: { kind: 'port', default: null, cli: 'N', doc: 'serve /metrics, /stats and /health on this port, apart from the clients (0 picks a free one)' },
  adminHost: { kind: 'text', default: '127.0.0.1', cli: 'ADDR', doc: 'address of the admin listener' },
  statsPath: { kind: 'path', default: '', cli: 'PATH', doc: "also serve per-worker counters as JSON at PATH on the clients' port" },
  metricsPath: { kind: 'path', default: '', cli: 'PATH', doc: "also serve Prometheus metrics at PATH on the clients' port" },
  healthPath: { kind: 'path', default: '', cli: 'PATH', doc: "also serve a JSON health check at PATH on the clients' port" },
  logLevel: { kind: 'choice', default: 'info', values: LOG_LEVELS, cli: 'LEVEL', doc: 'log level' },
  logFormat: { kind: 'choice', default: 'auto', values: ['auto', 'json', 'pretty'], cli: 'FORMAT', doc: 'log lines as json or pretty; auto: pretty when stdout is a terminal' },
  shutdownGrace: { kind: 'seconds', default: 10, max: 300, wasMilliseconds: true, cli: 'SECS', doc: 'time connections get to close on shutdown' },
  heartbeatTimeout: { kind: 'seconds', default: 10, max: 300, wasMilliseconds: true, cli: 'SECS', doc: 'replace a worker whose heartbeat is this late' },
  maxLifetime: { kind: 'seconds', default: 0, max: 30 * 86_400, cli: 'SECS', doc: 'close connections older than this with 1001, less up to 20% at random (0 disables)' },
  presenceCapacity: { kind: 'count', default: 65_536, min: 16, max: 16 * 1024 * 1024, cli: 'N', doc: 'topics and tags counted across workers at once' },
  workerYoungGenerationSize: { kind: 'bytes', default: 16 * MiB, min: 0, max: 1024 * MiB, cli: 'BYTES', doc: "each worker's V8 young generation (whole MiB; 0: V8 decides)" },
  heapGrowingPercent: { kind: 'count', default: DEFAULT_HEAP_GROWING_PERCENT, min: 0, max: 1000, cli: 'N', doc: "V8 heap growth after a full GC, in percent (process-wide V8 flag; 0: V8 decides)" },
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

/** The redisBridge() option each value of REDIS_OPTIONS sets (`--redis-streams` sets `mode`, which is no number). */
export const REDIS_BRIDGE_FIELDS = {
  redisRetention: 'retention.maxLength',
  redisMaxAge: 'retention.maxAge',
  redisOutageBuffer: 'outageBuffer',
} as const satisfies Readonly<Partial<Record<keyof typeof REDIS_OPTIONS, string>>>;

/** Options renamed or changed in unit: a value under the old name fails with how to move. */
const RENAMED: Readonly<Record<string, string>> = {
  workerYoungGenerationMb: 'workerYoungGenerationSize (bytes, e.g. 16 * 1024 * 1024)',
};

type PresetSettings = Omit<DeflateConfig, 'preset' | 'level' | 'threshold'>;

/**
 * The presets of the `deflate` option. Memory per connection for each is measured in
 * docs/operations.md ("Choosing the compression mode", `node bench/deflate-memory.ts`). The
 * small compressor takes uWebSockets' DEDICATED_COMPRESSOR_4KB window and memLevel; Node's zlib
 * (Chromium's) keeps a 64 KiB hash table whatever the memLevel, so it saves about half of a
 * full compressor's memory, not 98%.
 */
export const DEFLATE_PRESETS: Readonly<Record<DeflatePreset, PresetSettings>> = Object.freeze({
  shared: { compressor: 'shared', decompressor: 'shared', serverMaxWindowBits: 15, clientMaxWindowBits: 15, memLevel: DEFAULT_MEM_LEVEL },
  dedicated: { compressor: 'dedicated', decompressor: 'dedicated', serverMaxWindowBits: 15, clientMaxWindowBits: 15, memLevel: DEFAULT_MEM_LEVEL },
  'dedicated-compressor': { compressor: 'dedicated', decompressor: 'shared', serverMaxWindowBits: 15, clientMaxWindowBits: 15, memLevel: DEFAULT_MEM_LEVEL },
  'dedicated-compressor-small': { compressor: 'dedicated', decompressor: 'shared', serverMaxWindowBits: 9, clientMaxWindowBits: 15, memLevel: 2 },
});

const SIDES: readonly DeflateSide[] = ['shared', 'dedicated'];
/** Said of the fields whose default is the preset's: the table's default is the shared preset's. */
const BY_PRESET = "(default: the preset's)";

/**
 * The fields of the deflate option (when it is on), as the table's options are: checked by
 * resolveConfig, and each a `shardws serve` flag `--deflate-<name>` (the preset is
 * `--deflate=PRESET`). A default marked BY_PRESET is the shared preset's; other presets set
 * their own (DEFLATE_PRESETS).
 */
export const DEFLATE_OPTIONS: { readonly [K in Exclude<keyof DeflateConfig, 'preset'>]: OptionSpec } = {
  compressor: { kind: 'choice', default: 'shared', values: SIDES, cli: 'SIDE', doc: `server to client: shared, one compressor per worker and no context kept, or dedicated, one per connection ${BY_PRESET}` },
  decompressor: { kind: 'choice', default: 'shared', values: SIDES, cli: 'SIDE', doc: `client to server: shared, clients asked for client_no_context_takeover, or dedicated, a window per connection ${BY_PRESET}` },
  serverMaxWindowBits: { kind: 'count', default: 15, min: 8, max: 15, cli: 'BITS', doc: `the compressor's window, 8-15; a client may ask for less ${BY_PRESET}` },
  clientMaxWindowBits: { kind: 'count', default: 15, min: 8, max: 15, cli: 'BITS', doc: 'the largest window a client may compress with, 8-15' },
  level: { kind: 'count', default: DEFAULT_LEVEL, min: 0, max: 9, cli: 'N', doc: 'zlib compression level, 0-9' },
  memLevel: { kind: 'count', default: DEFAULT_MEM_LEVEL, min: 1, max: 9, cli: 'N', doc: `zlib memory level of a dedicated compressor, 1-9 ${BY_PRESET}` },
  threshold: { kind: 'bytes', default: DEFAULT_THRESHOLD, min: 0, max: Number.MAX_SAFE_INTEGER, cli: 'BYTES', doc: 'messages smaller than this go uncompressed' },
};

/** Defaults of the deflate option when it is on: the shared preset. */
export const DEFLATE_DEFAULTS: DeflateConfig = Object.freeze({
  preset: 'shared',
  ...DEFLATE_PRESETS.shared,
  threshold: DEFAULT_THRESHOLD,
  level: DEFAULT_LEVEL,
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
    case 'port':
      if (value === null) return null;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
        throw new RangeError(`option ${name} must be a port from 0 to 65535 (or null for none), got ${String(value)}`);
      }
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw new TypeError(`option ${name} must be true or false, got ${String(value)}`);
      return value;
    case 'text':
      if (typeof value !== 'string') throw new TypeError(`option ${name} must be a string, got ${String(value)}`);
      return value;
  }
}

const DEFLATE_FIELDS: ReadonlySet<string> = new Set<keyof DeflateOptions>([
  'preset', 'mode', 'compressor', 'decompressor', 'serverNoContextTakeover', 'clientNoContextTakeover',
  'serverMaxWindowBits', 'clientMaxWindowBits', 'level', 'memLevel', 'threshold',
]);

/**
 * One side's setting, from our name (`side`, already checked; `given`: set, not the preset's)
 * or ws's (`*NoContextTakeover: true` is 'shared'); given both, they must agree.
 */
function deflateSide(name: string, side: DeflateSide, wsName: string, noContext: unknown, given: boolean): DeflateSide {
  if (noContext === undefined) return side;
  if (typeof noContext !== 'boolean') throw new TypeError(`option deflate.${wsName} must be true or false, got ${String(noContext)}`);
  const implied: DeflateSide = noContext ? 'shared' : 'dedicated';
  if (given && side !== implied) {
    throw new RangeError(`option deflate.${name} '${side}' contradicts deflate.${wsName}: ${String(noContext)} (${wsName}: true means ${name} 'shared')`);
  }
  return implied;
}

function resolveDeflate(value: ServerOptions['deflate']): DeflateConfig | null {
  if (value === undefined || value === false) return null;
  if (value !== true && typeof value !== 'string' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new TypeError(`option deflate must be true, false, a preset name or an object, got ${String(value)}`);
  }
  const options: DeflateOptions = value === true ? {} : typeof value === 'string' ? { preset: value } : value;
  for (const key of Object.keys(options)) {
    if (!DEFLATE_FIELDS.has(key)) throw new TypeError(`option deflate has no field ${key} (fields: ${[...DEFLATE_FIELDS].join(', ')})`);
  }
  if (options.mode !== undefined && options.preset !== undefined) throw new TypeError('option deflate takes preset or its old name mode, not both');
  const presetName = optionValue('deflate.preset', { kind: 'choice', default: 'shared', values: Object.keys(DEFLATE_PRESETS), cli: false, doc: '' }, options.preset ?? options.mode) as DeflatePreset;
  const preset = DEFLATE_PRESETS[presetName];
  // Each field checked against its row of the table, its default the preset's.
  const field = <K extends keyof typeof DEFLATE_OPTIONS>(name: K, fallback: DeflateConfig[K]): DeflateConfig[K] =>
    optionValue(`deflate.${name}`, { ...DEFLATE_OPTIONS[name], default: fallback } as OptionSpec, options[name]) as DeflateConfig[K];
  return Object.freeze({
    preset: presetName,
    compressor: deflateSide('compressor', field('compressor', preset.compressor), 'serverNoContextTakeover', options.serverNoContextTakeover, options.compressor !== undefined),
    decompressor: deflateSide('decompressor', field('decompressor', preset.decompressor), 'clientNoContextTakeover', options.clientNoContextTakeover, options.decompressor !== undefined),
    serverMaxWindowBits: field('serverMaxWindowBits', preset.serverMaxWindowBits),
    clientMaxWindowBits: field('clientMaxWindowBits', preset.clientMaxWindowBits),
    level: field('level', DEFLATE_DEFAULTS.level),
    memLevel: field('memLevel', preset.memLevel),
    threshold: field('threshold', DEFLATE_DEFAULTS.threshold),
  });
}

/** The app's options cross to every worker by structured clone: what cannot, fails here, once. */
function resolveAppOptions(value: unknown): unknown {
  try {
    structuredClone(value);
  } catch (error) {
    throw new TypeError(`option appOptions must be plain data (what structuredClone copies): ${(error as Error).message}`);
  }
  return value;
}

function checkCertificate(name: string, tls: TlsCertificate): void {
  if ((tls.cert === undefined) === (tls.certFile === undefined)) throw new TypeError(`option ${name} needs exactly one of cert (PEM) or certFile`);
  if ((tls.key === undefined) === (tls.keyFile === undefined)) throw new TypeError(`option ${name} needs exactly one of key (PEM) or keyFile`);
}

function resolveTls(tls: TlsOptions | undefined): TlsOptions | null {
  if (tls === undefined) return null;
  checkCertificate('tls', tls);
  if (tls.sni !== undefined) {
    if (typeof tls.sni !== 'object' || tls.sni === null) throw new TypeError('option tls.sni must be an object of server names');
    for (const [name, certificate] of Object.entries(tls.sni)) {
      // RFC 6066 §3: a DNS host name; one leading "*." label stands for any one label.
      if (!/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(name)) throw new TypeError(`option tls.sni: ${JSON.stringify(name)} is not a host name (or *.name)`);
      checkCertificate(`tls.sni['${name}']`, certificate);
    }
  }
  for (const flag of ['requestCert', 'rejectUnauthorized'] as const) {
    if (tls[flag] !== undefined && typeof tls[flag] !== 'boolean') throw new TypeError(`option tls.${flag} must be true or false`);
  }
  return Object.freeze({ ...tls, ...(tls.sni ? { sni: Object.freeze({ ...tls.sni }) } : {}) });
}

function resolveOrigins(name: string, origins: readonly string[] | undefined): readonly string[] | null {
  if (origins === undefined) return null;
  if (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string')) throw new TypeError(`option ${name} must be an array of strings`);
  return Object.freeze([...origins]);
}

/** Route settings from `options`, each falling back to `base` (the server's). */
function resolveRouteSettings(prefix: string, options: RouteOptions, base: RouteSettings): RouteSettings {
  const value = <K extends 'maxPayloadLength' | 'maxBackpressure' | 'highWaterMark' | 'lowWaterMark' | 'slowClient'>(name: K): RouteSettings[K] =>
    (options[name] === undefined ? base[name] : optionValue(`${prefix}${name}`, OPTIONS[name], options[name])) as RouteSettings[K];
  const settings: RouteSettings = {
    deflate: options.deflate === undefined ? base.deflate : resolveDeflate(options.deflate),
    maxPayloadLength: value('maxPayloadLength'),
    maxBackpressure: value('maxBackpressure'),
    highWaterMark: value('highWaterMark'),
    lowWaterMark: value('lowWaterMark'),
    slowClient: value('slowClient'),
    origins: options.origins === undefined ? base.origins : resolveOrigins(`${prefix}origins`, options.origins),
  };
  if (settings.lowWaterMark > settings.highWaterMark) throw new RangeError(`option ${prefix}lowWaterMark must not exceed highWaterMark`);
  if (settings.maxBackpressure < settings.highWaterMark) throw new RangeError(`option ${prefix}maxBackpressure must be at least highWaterMark`);
  return settings;
}

/** `/path` or `/path/*`: visible ASCII, no query. */
const ROUTE_PATTERN = /^\/[!$&'()*+,\-.0-9:;=@A-Z_a-z~%/]*$/;

function resolveRoutes(routes: ServerOptions['routes'], base: RouteSettings): readonly RouteConfig[] {
  if (routes === undefined) return Object.freeze([]);
  if (typeof routes !== 'object' || routes === null) throw new TypeError('option routes must be an object of paths');
  const out: RouteConfig[] = [];
  for (const [pattern, spec] of Object.entries(routes)) {
    const prefix = `routes['${pattern}'].`;
    const star = pattern.indexOf('*');
    if (!ROUTE_PATTERN.test(pattern) || (star >= 0 && (star !== pattern.length - 1 || !pattern.endsWith('/*')))) {
      throw new TypeError(`option routes: ${JSON.stringify(pattern)} must be a path ("/chat") or a path and everything under it ("/chat/*")`);
    }
    const options: RouteOptions = typeof spec === 'string' || spec instanceof URL ? { app: spec } : spec;
    if ((options.app === undefined) === (options.proxy === undefined)) throw new TypeError(`option ${prefix.slice(0, -1)} needs exactly one of app or proxy`);
    out.push(
      Object.freeze({
        pattern,
        app: options.app === undefined ? null : options.app instanceof URL ? options.app.href : String(options.app),
        proxy: options.proxy === undefined ? null : resolveProxyTarget(options.proxy, `option ${prefix}proxy`),
        ...resolveRouteSettings(prefix, options, base),
      }),
    );
  }
  return Object.freeze(out);
}

/** Validates options once, at startup, into the readonly config every thread works from. */
export function resolveConfig(options: ServerOptions, defaultWorkers: number, bridged: false | BridgeKind = false, clustered = false): ServerConfig {
  for (const old of Object.keys(RENAMED)) {
    if (old in options) throw new TypeError(`option ${old} was replaced by ${RENAMED[old]}`);
  }
  const scalars: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(OPTIONS) as [ScalarOption, OptionSpec][]) {
    scalars[name] = optionValue(name, spec, options[name]);
  }
  // One per core by default, on a host of any size.
  if (options.workers === undefined) scalars.workers = Math.max(1, Math.min(MAX_WORKERS, Math.floor(defaultWorkers)));
  // listen() decides `auto` from its stdout first; a config made without it gets JSON.
  if (scalars.logFormat === 'auto') scalars.logFormat = 'json';
  const values = scalars as Omit<ServerConfig, 'app' | 'appOptions' | 'deflate' | 'tls' | 'origins' | 'bridged' | 'clustered' | 'routes' | 'proxy'>;
  if (values.lowWaterMark > values.highWaterMark) throw new RangeError('option lowWaterMark must not exceed highWaterMark');
  if (values.maxBackpressure < values.highWaterMark) throw new RangeError('option maxBackpressure must be at least highWaterMark');
  if (options.app !== undefined && options.proxy !== undefined) throw new TypeError('options app and proxy exclude each other: give a route for one of them');
  // RFC 8441 runs over h2, which browsers and our client reach only by ALPN on TLS.
  if (values.http2 && options.tls === undefined) throw new TypeError('option http2 needs tls: HTTP/2 is offered by ALPN during the TLS handshake');
  const base: RouteSettings = { ...values, deflate: resolveDeflate(options.deflate), origins: resolveOrigins('origins', options.origins) };
  return Object.freeze({
    ...values,
    app: options.app === undefined ? null : options.app instanceof URL ? options.app.href : String(options.app),
    appOptions: resolveAppOptions(options.appOptions),
    deflate: base.deflate,
    tls: resolveTls(options.tls),
    origins: base.origins,
    routes: resolveRoutes(options.routes, base),
    proxy: options.proxy === undefined ? null : resolveProxyTarget(options.proxy, 'option proxy'),
    bridged,
    clustered,
  });
}
