/**
 * `shardws bench URL [options]`: parses the options (BENCH_HELP lists them with their
 * defaults), runs the load, prints a table (or markdown, or JSON) on stdout and a progress line
 * on stderr when it is a terminal. Ctrl-C stops the run and prints what was measured. Returns the
 * exit code: 0 clean, 1 errors seen or nothing connected, 2 bad options, 130 interrupted.
 */
import { parseArgs } from 'node:util';
import { UsageError, decimal as decimalNumber, joinNegativeValues, wholeNumber } from '../../src/runtime/cli-args.ts';
import { BENCH_HELP, resolveBenchOptions } from './options.ts';
import type { BenchMode, BenchOptions } from './options.ts';
import type { MessageKind } from './message-template.ts';
import { formatMarkdown, formatTable } from './report.ts';
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

type Output = 'table' | 'markdown' | 'json';

/** The flags that take a value, long names. */
const VALUE_FLAGS = new Set(['mode', 'connections', 'in-flight', 'size', 'kind', 'duration', 'warmup', 'threads', 'concurrency', 'handshake-timeout', 'server-pid', 'publish-url', 'header']);

function parse(argv: string[]): { options: BenchOptions; output: Output } | 'help' {
  const { values, positionals } = parseArgs({
    // `--connections -3` reaches our check ("must be a whole number"), not parseArgs's "ambiguous".
    args: joinNegativeValues(argv, (flag) => VALUE_FLAGS.has(flag)),
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
      http2: { type: 'boolean' },
      header: { type: 'string', short: 'H', multiple: true },
      json: { type: 'boolean' },
      markdown: { type: 'boolean' },
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
    http2: values.http2,
    headers: headers(values.header),
  });
  if (values.json === true && values.markdown === true) throw new UsageError('--json and --markdown exclude each other');
  return { options, output: values.json === true ? 'json' : values.markdown === true ? 'markdown' : 'table' };
}

/** Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130;

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
  // The first Ctrl-C stops the run and prints what it measured; a second one quits at once.
  const abort = new AbortController();
  const onInterrupt = (): void => {
    if (abort.signal.aborted) process.exit(INTERRUPTED);
    if (tty) process.stderr.write('\r\x1b[2Kstopping (Ctrl-C again to quit now)…');
    abort.abort();
  };
  process.on('SIGINT', onInterrupt);
  let result;
  try {
    result = await runLoad(parsed.options, {
      progress: tty ? (line) => process.stderr.write(`\r\x1b[2K${line}`) : undefined,
      signal: abort.signal,
    });
  } finally {
    process.off('SIGINT', onInterrupt);
    if (tty) process.stderr.write('\r\x1b[2K');
  }
  // Nothing connected: one line that says why, not a table of zeros.
  if (result.connections.opened === 0 && !result.interrupted) {
    const why = result.errorSamples[0]?.[0] ?? 'no error reported';
    process.stderr.write(`shardws bench: no connection to ${parsed.options.url} could be opened (stopped after ${result.connections.failed} failed attempts): ${why}\n`);
    return 1;
  }
  const output = parsed.output;
  process.stdout.write(output === 'json' ? `${JSON.stringify(result, null, 2)}\n` : output === 'markdown' ? formatMarkdown(result) : formatTable(result, process.stdout.isTTY === true && !process.env.NO_COLOR));
  if (result.interrupted) return INTERRUPTED;
  return result.errors > 0 || result.lost > 0 || result.connections.opened === 0 ? 1 : 0;
}
