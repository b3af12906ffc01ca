/**
 * `shardws bench URL [options]`: parses the options (BENCH_HELP lists them with their
 * defaults), runs the load, prints markdown or JSON on stdout and a progress line on stderr
 * when it is a terminal. Returns the exit code: 0 clean, 1 errors seen, 2 bad options.
 */
import { parseArgs } from 'node:util';
import { UsageError, decimal as decimalNumber, wholeNumber } from '../../src/runtime/cli-args.ts';
import { BENCH_HELP, resolveBenchOptions } from './options.ts';
import type { BenchMode, BenchOptions } from './options.ts';
import type { MessageKind } from './message-template.ts';
import { formatMarkdown } from './report.ts';
import { runLoad } from './run-load.ts';

const whole = (name: string, value: string | undefined): number | undefined => (value === undefined ? undefined : wholeNumber(name, value));
const decimal = (name: string, value: string | undefined): number | undefined => (value === undefined ? undefined : decimalNumber(name, value));

function headers(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values ?? []) {
    const colon = value.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header must look like "Name: value", got "${value}"`);
    out[value.slice(0, colon).trim()] = value.slice(colon + 1).trim();
  }
  return out;
}

function parse(argv: string[]): { options: BenchOptions; json: boolean } | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      mode: { type: 'string' },
      connections: { type: 'string', short: 'c' },
      'in-flight': { type: 'string', short: 'p' },
      size: { type: 'string', short: 's' },
      kind: { type: 'string' },
      deflate: { type: 'boolean' },
      duration: { type: 'string', short: 'd' },
      warmup: { type: 'string', short: 'w' },
      threads: { type: 'string', short: 't' },
      concurrency: { type: 'string' },
      'handshake-timeout': { type: 'string' },
      'server-pid': { type: 'string' },
      'fast-mask': { type: 'boolean' },
      'raw-echo': { type: 'boolean' },
      'publish-url': { type: 'string' },
      insecure: { type: 'boolean' },
      header: { type: 'string', short: 'H', multiple: true },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'bench needs the URL of a WebSocket endpoint (try --help)' : `bench takes one URL, got ${positionals.length}`);
  const pids = values['server-pid']?.split(',').map((pid) => whole('server-pid', pid.trim())!);
  const options = resolveBenchOptions({
    url: positionals[0]!,
    mode: values.mode as BenchMode | undefined,
    connections: whole('connections', values.connections),
    inFlight: whole('in-flight', values['in-flight']),
    size: whole('size', values.size),
    kind: values.kind as MessageKind | undefined,
    deflate: values.deflate,
    duration: decimal('duration', values.duration),
    warmup: decimal('warmup', values.warmup),
    threads: whole('threads', values.threads),
    concurrency: whole('concurrency', values.concurrency),
    handshakeTimeout: whole('handshake-timeout', values['handshake-timeout']),
    serverPids: pids,
    fastMask: values['fast-mask'],
    rawEcho: values['raw-echo'],
    publishUrl: values['publish-url'],
    insecure: values.insecure,
    headers: headers(values.header),
  });
  return { options, json: values.json === true };
}

export async function runBenchCli(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof UsageError || error instanceof RangeError || String(code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`shardws bench: ${(error as Error).message}\n`);
      return 2;
    }
    throw error;
  }
  if (parsed === 'help') {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const tty = process.stderr.isTTY === true;
  const result = await runLoad(parsed.options, {
    progress: tty ? (line) => process.stderr.write(`\r\x1b[2K${line}`) : undefined,
  });
  if (tty) process.stderr.write('\r\x1b[2K');
  process.stdout.write(parsed.json ? `${JSON.stringify(result, null, 2)}\n` : formatMarkdown(result));
  return result.errors > 0 || result.lost > 0 || result.connections.opened === 0 ? 1 : 0;
}
