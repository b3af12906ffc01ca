#!/usr/bin/env node
/**
 * The `shardws` command: `shardws serve [APP] [options]` and `shardws bench URL [options]`.
 * Bad input gets one clear line on stderr and exit code 2; a failure at run time exit code 1.
 */
import { readFileSync } from 'node:fs';
import { listen } from './main/listen.ts';
import { SERVE_HELP, parseServeArgs } from './main/serve-command.ts';
import { UsageError } from './runtime/cli-args.ts';

const VERSION = (JSON.parse(readFileSync(new URL(import.meta.url.includes('/dist/') ? '../../package.json' : '../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `Usage: shardws <command> [options]

Commands:
  serve [APP]   run a sharded WebSocket server (shardws serve --help)
  bench URL     load-test any ws:// or wss:// server (shardws bench --help)

Options:
  -h, --help    this help
  -v, --version print the version
`;

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
  if (command !== 'serve') throw new UsageError(`unknown command "${command}" (try shardws --help)`);
  const { options, redis, help } = parseServeArgs(rest);
  if (help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  // Loaded only when asked for: a server without a bridge never loads ioredis.
  const bridge = redis === undefined ? undefined : (await import('./main/redis-bridge.ts')).redisBridge(redis);
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
