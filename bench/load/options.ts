/**
 * The load generator's options: their defaults, the help that lists them, and the one check
 * that turns partial options into a complete, valid BenchOptions (so a bad value fails before
 * any thread or socket is started).
 */
import { availableParallelism } from 'node:os';
import { buildUpgradeRequest } from '../../src/shared/handshake.ts';
import { parseTarget } from './client-handshake.ts';
import { MessageTemplate } from './message-template.ts';
import type { MessageKind } from './message-template.ts';

export type BenchMode = 'echo' | 'broadcast' | 'connect';

export interface BenchOptions {
  /** ws://, wss:// (or http://, https://) URL of the endpoint. */
  readonly url: string;
  /** Broadcast: where the publisher connects, when not `url` (another server of a cluster). */
  readonly publishUrl: string | null;
  readonly mode: BenchMode;
  /** echo: connections; broadcast: subscribers (plus one publisher); connect: connections to open. */
  readonly connections: number;
  /** echo: messages in flight per connection; broadcast: messages the publisher keeps in flight. */
  readonly inFlight: number;
  /** Message size in bytes (before compression). */
  readonly size: number;
  readonly kind: MessageKind;
  /** Offer permessage-deflate (client_no_context_takeover, so the generator compresses synchronously). */
  readonly deflate: boolean;
  /** Seconds measured (connect: seconds the connections are held). */
  readonly duration: number;
  /** Seconds of traffic before measuring. */
  readonly warmup: number;
  /** Client threads (piscina). */
  readonly threads: number;
  /** Handshakes in progress at once, over all threads. */
  readonly concurrency: number;
  /** Milliseconds for TCP connect + opening handshake. */
  readonly handshakeTimeout: number;
  /** The server's process id(s): its CPU and (connect mode) RSS are read from /proc, children included. */
  readonly serverPids: readonly number[];
  /** Reuse one masking key per connection and pre-masked frames (see prepared-frame.ts). */
  readonly fastMask: boolean;
  /** The peer is a raw TCP echo: no handshake, our masked frames come back as they were sent. */
  readonly rawEcho: boolean;
  /** Accept any TLS certificate (wss://). */
  readonly insecure: boolean;
  /** WebSockets over HTTP/2 (RFC 8441): each thread's connections share one HTTP/2 connection. */
  readonly http2: boolean;
  /** Extra request headers. */
  readonly headers: Readonly<Record<string, string>>;
}

export const DEFAULTS = {
  mode: 'echo',
  connections: 10,
  inFlight: 1,
  size: 64,
  kind: 'text',
  deflate: false,
  duration: 10,
  warmup: 2,
  concurrency: 100,
  handshakeTimeout: 10_000,
  fastMask: false,
  rawEcho: false,
  insecure: false,
  http2: false,
} as const;

export const BENCH_HELP = `Usage: shardws bench URL [options]

Drives any ws:// or wss:// server and reports messages/s, MB/s, latency percentiles (from a
histogram merged over all client threads), errors, and the generator's own CPU use. Every
message received is checked (type, length, sequence, time stamp, content); a wrong one is an
error, never a data point.

Modes:
  echo        C connections, each keeping P messages in flight; the server echoes them
  broadcast   C subscribers + 1 publisher; the server relays each message to every other
              client (shardws demo /broadcast); the publisher keeps P messages in flight
              (counted at one subscriber); reports deliveries/s and delivery latency
  connect     opens C connections as fast as --concurrency allows, holds them --duration
              seconds; reports handshakes/s, connections held, server RSS per connection

Options:
  --mode MODE              echo, broadcast or connect (default ${DEFAULTS.mode})
  -c, --connections N      connections (broadcast: subscribers) (default ${DEFAULTS.connections})
  -p, --in-flight N        messages in flight per connection / at the publisher (default ${DEFAULTS.inFlight})
  -s, --size BYTES         message size (default ${DEFAULTS.size}; at least 26, json 46)
  --kind KIND              text, binary or json (default ${DEFAULTS.kind})
  --deflate                offer permessage-deflate; every message is compressed (default off)
  -d, --duration SECS      seconds measured; connect: seconds held (default ${DEFAULTS.duration})
  -w, --warmup SECS        seconds of traffic before measuring (default ${DEFAULTS.warmup})
  -t, --threads N          client threads (default: one per core, ${availableParallelism()} here)
  --concurrency N          handshakes in progress at once (default ${DEFAULTS.concurrency})
  --handshake-timeout MS   connect + handshake deadline per connection (default ${DEFAULTS.handshakeTimeout})
  --server-pid PID[,PID]   read the server's CPU time (and RSS in connect mode) from /proc,
                           child processes included (default: none)
  --fast-mask              one masking key per connection and pre-masked frames: RFC 6455 §5.3
                           wants a fresh unpredictable key per frame; a load generator runs no
                           untrusted code and may trade that for speed (default off: fresh keys)
  --publish-url URL        broadcast: the publisher connects here instead of URL, e.g. another
                           server joined to URL's through Redis (default: URL)
  --raw-echo               the URL is a raw TCP echo (no handshake): the masked frames we send
                           come back masked, and are read as such; measures the ceiling of
                           Node socket I/O (default off)
  --insecure               accept any TLS certificate for wss:// (default off)
  --http2                  open the WebSockets as streams of one HTTP/2 connection per client
                           thread (RFC 8441, wss:// and a server with --http2), with the client's
                           own connection pool (default off: one TCP connection each)
  -H, --header "N: V"      extra request header, repeatable (default: none)
  --markdown               print the result as a markdown table (default: a terminal table)
  --json                   print the result as JSON (default: a terminal table)
  -h, --help               this help

A progress line with live rates goes to stderr when it is a terminal, warm-up included. Ctrl-C
stops the run and prints the partial results (a second Ctrl-C quits at once). When no
connection opens, the run stops after the first failures with one line saying why. A note
warns when the generator itself used >= 90% of its threads' CPU (then it, not the server, set
the pace). Exit codes: 0 no errors, 1 errors, lost messages or no connection, 2 bad options,
130 interrupted.
`;

function whole(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`--${name} must be a whole number from ${min} to ${max}, got ${value}`);
  return value;
}

function seconds(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`--${name} must be a number of seconds >= 0, got ${value}`);
  return value;
}

/** Fills in defaults and checks every option; throws RangeError with the option's name. */
export function resolveBenchOptions(options: Partial<BenchOptions> & { readonly url: string }): BenchOptions {
  const mode = options.mode ?? DEFAULTS.mode;
  if (mode !== 'echo' && mode !== 'broadcast' && mode !== 'connect') throw new RangeError(`--mode must be echo, broadcast or connect, got "${String(mode)}"`);
  const kind = options.kind ?? DEFAULTS.kind;
  if (kind !== 'text' && kind !== 'binary' && kind !== 'json') throw new RangeError(`--kind must be text, binary or json, got "${String(kind)}"`);
  const size = whole('size', options.size ?? DEFAULTS.size, MessageTemplate.minimumSize(kind), 64 * 1024 * 1024);
  const rawEcho = options.rawEcho ?? DEFAULTS.rawEcho;
  const deflate = options.deflate ?? DEFAULTS.deflate;
  if (rawEcho && deflate) throw new RangeError('--raw-echo and --deflate exclude each other: a TCP echo negotiates nothing');
  if (rawEcho && mode !== 'echo') throw new RangeError('--raw-echo works in echo mode only');
  const http2 = options.http2 ?? DEFAULTS.http2;
  if (http2 && rawEcho) throw new RangeError('--http2 and --raw-echo exclude each other: a TCP echo has no streams');
  const serverPids = options.serverPids ?? [];
  for (const pid of serverPids) whole('server-pid', pid, 1);
  const target = parseTarget(options.url);
  if (http2 && !target.secure) throw new RangeError('--http2 needs a wss:// URL: HTTP/2 is chosen by ALPN during TLS');
  const publishUrl = options.publishUrl ?? null;
  if (publishUrl !== null) {
    if (mode !== 'broadcast') throw new RangeError('--publish-url works in broadcast mode only');
    parseTarget(publishUrl);
  }
  const headers = options.headers ?? {};
  try {
    // Checked once here rather than failing every connection: names, values, reserved headers.
    buildUpgradeRequest({ host: target.hostHeader, path: target.path, key: 'AAAAAAAAAAAAAAAAAAAAAA==', headers });
  } catch (error) {
    throw new RangeError(`--header: ${(error as Error).message}`);
  }
  return {
    url: options.url,
    publishUrl,
    mode,
    connections: whole('connections', options.connections ?? DEFAULTS.connections, 1),
    inFlight: whole('in-flight', options.inFlight ?? DEFAULTS.inFlight, 1, 1 << 16),
    size,
    kind,
    deflate,
    duration: seconds('duration', options.duration ?? DEFAULTS.duration),
    warmup: seconds('warmup', options.warmup ?? DEFAULTS.warmup),
    threads: whole('threads', options.threads ?? availableParallelism(), 1, 256),
    concurrency: whole('concurrency', options.concurrency ?? DEFAULTS.concurrency, 1),
    handshakeTimeout: whole('handshake-timeout', options.handshakeTimeout ?? DEFAULTS.handshakeTimeout, 1),
    serverPids,
    fastMask: options.fastMask ?? DEFAULTS.fastMask,
    rawEcho,
    insecure: options.insecure ?? DEFAULTS.insecure,
    http2,
    headers,
  };
}
