#!/usr/bin/env node
/**
 * The `shardws` command: `shardws serve [APP] [options]`, `shardws proxy URL[,URL...] [options]`
 * and `shardws bench URL [options]`.
 * Bad input gets one clear line on stderr and exit code 2; a failure at run time (the app does
 * not load, the port is taken) one line and exit code 1.
 */
import { readFileSync } from 'node:fs';
import { listen, readyMessage, serverUrl } from './main/listen.ts';
import { PROXY_HELP, SERVE_HELP, parseProxyArgs, parseServeArgs } from './main/serve-command.ts';
import { UsageError } from './runtime/cli-args.ts';

const VERSION = (JSON.parse(readFileSync(new URL(import.meta.url.includes('/dist/') ? '../../package.json' : '../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `Usage: shardws <command> [options]

Commands:
  serve [APP]   run a sharded WebSocket server (shardws serve --help)
  proxy URL     a WebSocket gateway to ws:// upstream(s): TLS and deflate on every core (shardws proxy --help)
  bench URL     load-test any ws:// or wss:// server (shardws bench --help)

Options:
  -h, --help    this help
  -v, --version print the version

Exit codes: 0 done (a server: stopped by SIGINT or SIGTERM), 1 failed at run time (the app does
not load, the port is taken, a bench saw errors), 2 bad command line (unknown option, bad value,
app file not found).
`;

/** One line for the errors a person meets when a server cannot start, with what to change. */
function startFailure(error: NodeJS.ErrnoException & { port?: number; address?: string; flag?: string }): string | null {
  const flag = error.flag ?? '--port';
  const where = error.address === undefined || error.address === '::' || error.address === '0.0.0.0' ? '' : ` on ${error.address}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return `port ${error.port}${where} is already in use (another server?); pick another with ${flag}`;
    case 'EACCES':
      return `no permission to listen on port ${error.port}${where} (ports below 1024 need privileges); pick another with ${flag}`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${error.address ?? 'that address'}: it is not an address of this machine (${flag === '--port' ? '--host' : '--admin-host'})`;
    case 'ENOTFOUND':
      return `cannot listen on --host ${(error as { hostname?: string }).hostname ?? ''}: the name does not resolve`;
    default:
      return null;
  }
}

/** `shardws bench`: the load generator, loaded only when asked for (piscina is an optional peer). */
async function bench(args: string[]): Promise<number> {
  let cli: typeof import('../bench/load/cli.ts');
  try {
    cli = await import('../bench/load/cli.ts');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /piscina/.test((error as Error).message)) {
      throw new Error('shardws bench needs piscina, an optional peer dependency that servers do not install: npm install piscina');
    }
    throw error;
  }
  return cli.runBenchCli(args);
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
  if (command === 'bench') return bench(rest);
  if (command !== 'serve' && command !== 'proxy') throw new UsageError(`unknown command "${command}" (try shardws --help)`);
  const { options, redis, help, watch } = command === 'serve' ? parseServeArgs(rest) : parseProxyArgs(rest);
  if (help) {
    process.stdout.write(command === 'serve' ? SERVE_HELP : PROXY_HELP);
    return 0;
  }
  // Loaded only when asked for: a server without a bridge never loads ioredis.
  const bridge = redis === undefined ? undefined : (await import('./main/redis-bridge.ts')).redisBridge(redis);
  // The same Redis joins connections and counts: send(id), sendTo(key), cluster-wide counts.
  const cluster = redis === undefined ? undefined : (await import('./main/redis-cluster.ts')).redisCluster({ url: redis.url });
  const server = await listen({ ...options, handleSignals: true, bridge, cluster });
  if (watch === true) {
    const { appDirectories, watchApp } = await import('./main/app-watcher.ts');
    const { config } = server;
    // The server's own app (the demo when it has neither app, proxy nor routes), and each route's.
    const ownApp = config.app !== null || (config.proxy === null && config.routes.length === 0) ? [config.app] : [];
    watchApp(appDirectories([...ownApp, ...config.routes.filter((route) => route.proxy === null).map((route) => route.app)]), () => server.reload(), server.logger);
  }
  // One human line that the server is up: the pretty log already says it when it shows info.
  if (server.config.logFormat === 'json' || !server.logger.isLevelEnabled('info')) {
    const admin = server.adminAddress();
    process.stderr.write(`shardws: ${readyMessage(serverUrl(server.address(), server.config.tls !== null), server.config, admin === null ? null : serverUrl(admin, false))}\n`);
  }
  return -1; // keep running until a signal closes the server
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const parseError = error instanceof Error && 'code' in error && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS');
    // Options are checked before anything starts (RangeError, TypeError); what fails after is a run-time failure.
    const usage = error instanceof UsageError || error instanceof RangeError || error instanceof TypeError || parseError;
    let message = (error instanceof Error && startFailure(error)) || (error instanceof Error ? error.message : String(error));
    // node:util's message for an unknown option runs on about positionals: say it in one line.
    const unknown = parseError && /Unknown option '([^']+)'/.exec(message);
    if (unknown) message = `unknown option ${unknown[1]} (try shardws ${process.argv[2] === 'proxy' ? 'proxy' : 'serve'} --help)`;
    process.stderr.write(`shardws: ${message}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
