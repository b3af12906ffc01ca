#!/usr/bin/env node
/**
 * The `shardws` command: `shardws serve [APP] [options]`. Every option maps to a listen()
 * option; bad ones get one clear line on stderr and exit code 2.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { listen } from './main/listen.ts';
import type { CompressionMode, LogLevel, ServerOptions, SlowClientPolicy } from './shared/config.ts';

const VERSION = (JSON.parse(readFileSync(new URL(import.meta.url.includes('/dist/') ? '../../package.json' : '../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const SERVE_HELP = `Usage: shardws serve [APP] [options]

Serves APP (a module whose default export is defineApp({...})) on worker threads; without APP,
the built-in demo (chat page at /, /echo, /broadcast, /chat).

Options:
  --port N               TCP port (default 8080; 0 picks a free one)
  --host ADDR            address to listen on (default: all, IPv4 and IPv6)
  --workers N            worker threads (default: one per core)
  --deflate[=MODE]       permessage-deflate: shared (default when given) or dedicated
  --max-payload BYTES    largest message after inflation (default 16777216)
  --idle-timeout SECS    close quiet connections with 1001 (default 120; 0 disables)
  --max-connections N    refuse new sockets with 503 past N (default 0: no limit)
  --max-backpressure B   bytes queued per connection before the slow-client policy (default 4194304)
  --slow-client POLICY   close (1008), drop, or custom (default close)
  --stats-path PATH      serve per-worker counters as JSON at PATH (default /stats)
  --metrics-path PATH    serve Prometheus metrics at PATH (default off)
  --health-path PATH     serve a JSON health check at PATH (default /health)
  --tls-cert FILE        serve wss:// with this PEM certificate; SIGHUP reloads it (default off)
  --tls-key FILE         the certificate's PEM private key (default none)
  --tls-ca FILE          PEM CA chain sent with the certificate (default none)
  --redis URL            join other servers' topics through Redis (redis://host:port[/db]; default off)
  --log-level LEVEL      fatal, error, warn, info, debug, trace, silent (default info)
  --worker-young-mb MIB  cap each worker's V8 young generation (default 16; 0: V8 decides)
  -h, --help             this help
`;

const HELP = `Usage: shardws <command> [options]

Commands:
  serve [APP]   run a sharded WebSocket server (shardws serve --help)
  bench URL     load-test any ws:// or wss:// server (shardws bench --help)

Options:
  -h, --help    this help
  -v, --version print the version
`;

class UsageError extends Error {}

function integerOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  return Number(value);
}

function numberOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number >= 0, got "${value}"`);
  return n;
}

function parseServe(args: string[]): { options: ServerOptions; redis: string | undefined; help: boolean } {
  // `--deflate` alone means shared mode; parseArgs has no optional values, so spell it out.
  const normalized = args.map((arg) => (arg === '--deflate' ? '--deflate=shared' : arg));
  const { values, positionals } = parseArgs({
    args: normalized,
    allowPositionals: true,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      workers: { type: 'string' },
      deflate: { type: 'string' },
      'max-payload': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'max-connections': { type: 'string' },
      'max-backpressure': { type: 'string' },
      'slow-client': { type: 'string' },
      'stats-path': { type: 'string' },
      'metrics-path': { type: 'string' },
      'health-path': { type: 'string' },
      'log-level': { type: 'string' },
      redis: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      'worker-young-mb': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (positionals.length > 1) throw new UsageError(`serve takes one APP module, got ${positionals.length}: ${positionals.join(' ')}`);
  const deflate = values.deflate;
  if (deflate !== undefined && deflate !== 'shared' && deflate !== 'dedicated') {
    throw new UsageError(`--deflate must be shared or dedicated, got "${deflate}"`);
  }
  let options: ServerOptions = {
    app: positionals[0],
    port: integerOption('port', values.port) ?? 8080,
    host: values.host,
    workers: integerOption('workers', values.workers),
    deflate: deflate as CompressionMode | undefined,
    maxPayloadLength: integerOption('max-payload', values['max-payload']),
    idleTimeout: numberOption('idle-timeout', values['idle-timeout']),
    maxConnections: integerOption('max-connections', values['max-connections']),
    maxBackpressure: integerOption('max-backpressure', values['max-backpressure']),
    slowClient: values['slow-client'] as SlowClientPolicy | undefined,
    statsPath: values['stats-path'] ?? '/stats',
    metricsPath: values['metrics-path'],
    healthPath: values['health-path'] ?? '/health',
    logLevel: values['log-level'] as LogLevel | undefined,
    workerYoungGenerationMb: integerOption('worker-young-mb', values['worker-young-mb']),
  };
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (certFile !== undefined) options = { ...options, tls: { certFile, keyFile, caFile: values['tls-ca'] } };
  const redis = values.redis;
  if (redis !== undefined && !/^rediss?:\/\//.test(redis)) throw new UsageError(`--redis must be a redis:// or rediss:// URL, got "${redis}"`);
  return { options, redis, help: values.help === true };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '-v' || command === '--version') {
    process.stdout.write(`shardws ${VERSION}\n`);
    return 0;
  }
  if (command === 'bench') return (await import('../bench/load/cli.ts')).runBenchCli(rest);
  if (command !== 'serve') throw new UsageError(`unknown command "${command}" (try shardws --help)`);
  const { options, redis, help } = parseServe(rest);
  if (help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  // Loaded only when asked for: ioredis is not needed to serve without it.
  const bridge = redis === undefined ? undefined : (await import('./main/redis-bridge.ts')).redisBridge({ url: redis });
  await listen({ ...options, handleSignals: true, bridge });
  return -1; // keep running until a signal closes the server
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const parseError = error instanceof Error && 'code' in error && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS');
    const usage = error instanceof UsageError || error instanceof RangeError || error instanceof TypeError || parseError;
    let message = error instanceof Error ? error.message : String(error);
    // node:util's message for an unknown option runs on about positionals: say it in one line.
    const unknown = parseError && /Unknown option '([^']+)'/.exec(message);
    if (unknown) message = `unknown option ${unknown[1]} (try shardws serve --help)`;
    process.stderr.write(`shardws: ${message}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
