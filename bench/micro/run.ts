/**
 * Protocol-core microbenchmarks: ours against ws's own modules, one table row per case.
 *
 *   npm run bench:micro [-- --filter <substr>] [--time <ms>] [--json]
 *
 * Every case is verified once (both sides must produce the same result) before anything is
 * timed. Each subject is one tinybench task; subjects shared by several rows run once, and the
 * two sides of a row run back to back so that drift on a busy machine hits both about equally.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import type { Task } from 'tinybench';
import { UsageError, decimal } from '../../src/runtime/cli-args.ts';
import type { BenchCase, Subject } from './case.ts';
import { cases as deflateCases, cpuSplit } from './deflate.bench.ts';
import type { CpuSplitRow } from './deflate.bench.ts';
import { cases as encodeCases } from './encode.bench.ts';
import { cases as maskCases } from './mask.bench.ts';
import { cases as parseCases } from './parse.bench.ts';
import { cases as utf8Cases } from './utf8.bench.ts';

interface Args {
  json: boolean;
  filter: string | null;
  time: number;
}

const USAGE = 'usage: npm run bench:micro -- [--filter <substr>] [--time <ms per task>] [--json]';

/** The options, or 'help'; a bad command line throws UsageError (one line, exit code 2). */
export function parseMicroArgs(argv: readonly string[]): Args | 'help' {
  const args: Args = { json: false, filter: null, time: 500 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value (${USAGE})`);
      return argv[++i]!;
    };
    if (arg === '--json') args.json = true;
    else if (arg === '--filter') args.filter = value().toLowerCase();
    else if (arg === '--time') {
      const raw = value();
      args.time = decimal('time', raw);
      if (args.time === 0) throw new UsageError(`--time must be a positive number of milliseconds, got "${raw}"`);
    } else if (arg === '--help' || arg === '-h') return 'help';
    else throw new UsageError(`unknown argument ${arg} (${USAGE})`);
  }
  return args;
}

interface Measured {
  readonly label: string;
  /** Operations per second (tinybench's mean throughput × the subject's batch). */
  readonly hz: number;
  /** Relative margin of error of the mean, percent. */
  readonly rme: number;
  readonly samples: number;
}

interface Row {
  readonly name: string;
  readonly ours: Measured;
  readonly baseline: Measured | null;
  /** ours / baseline */
  readonly ratio: number | null;
  /** Combined relative margin of the ratio, percent. */
  readonly ratioRme: number | null;
  readonly oursMiBs: number | null;
}

const require = createRequire(import.meta.url);
/** A dependency's version, read from its package.json (found upward from its entry point). */
function versionOf(pkg: string): string {
  let dir: string;
  try {
    dir = dirname(require.resolve(pkg));
  } catch {
    return 'absent';
  }
  for (; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const json = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (json.name === pkg) return json.version ?? 'unknown';
  }
  return 'unknown';
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    node: process.version,
    v8: process.versions.v8,
    tinybench: versionOf('tinybench'),
    ws: versionOf('ws'),
    bufferutil: versionOf('bufferutil'),
    loadavgAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

function measured(task: Task, subject: Subject | null): Measured {
  const result = task.result;
  if (result.state !== 'completed') {
    throw new Error(`${task.name}: ${result.state === 'errored' ? result.error.message : result.state}`);
  }
  return {
    label: subject?.label ?? 'ours',
    hz: result.throughput.mean * (subject?.batch ?? 1),
    rme: result.throughput.rme,
    samples: result.throughput.samplesCount,
  };
}

function newBench(time: number): Bench {
  return new Bench({ time, warmupTime: Math.min(250, time / 2), throws: true });
}

async function runCases(selected: readonly BenchCase[], time: number, log: (line: string) => void): Promise<Row[]> {
  const bench = newBench(time);
  const taskNames = new Map<Subject, string>();
  for (const c of selected) {
    for (const subject of [c.ours, c.baseline]) {
      if (subject === null || taskNames.has(subject)) continue;
      const taskName = `${taskNames.size} ${subject.label}`;
      taskNames.set(subject, taskName);
      const opts = { async: subject.async ?? false, ...(subject.beforeEach ? { beforeEach: subject.beforeEach } : {}) };
      bench.add(taskName, subject.fn, opts);
    }
  }
  bench.addEventListener('cycle', (event) => {
    const task = event.task;
    if (task?.result.state === 'completed') log(`  ${task.name}: ${Math.round(task.result.throughput.mean)} calls/s`);
  });
  await bench.run();
  const of = (subject: Subject): Measured => measured(bench.getTask(taskNames.get(subject)!)!, subject);
  return selected.map((c) => {
    const ours = of(c.ours);
    const baseline = c.baseline === null ? null : of(c.baseline);
    return {
      name: c.name,
      ours,
      baseline,
      ratio: baseline === null ? null : ours.hz / baseline.hz,
      ratioRme: baseline === null ? null : Math.hypot(ours.rme, baseline.rme),
      oursMiBs: c.bytes === undefined ? null : (ours.hz * c.bytes) / 1048576,
    };
  });
}

/** The slab-pool benchmarks, when bench/micro/slab-pool.bench.ts exists (it registers its own tasks). */
async function runSlabPool(args: Args, log: (line: string) => void): Promise<Row[]> {
  const file = fileURLToPath(new URL('./slab-pool.bench.ts', import.meta.url));
  if (!existsSync(file)) return [];
  const module = (await import(pathToFileURL(file).href)) as { register(bench: Bench): void | Promise<void> };
  const bench = newBench(args.time);
  await module.register(bench);
  for (const task of [...bench.tasks]) {
    if (args.filter !== null && !`slab-pool ${task.name}`.toLowerCase().includes(args.filter)) bench.remove(task.name);
  }
  if (bench.tasks.length === 0) return [];
  log(`running ${bench.tasks.length} slab-pool tasks`);
  await bench.run();
  return bench.tasks.map((task) => ({
    name: task.name.startsWith('slab-pool') ? task.name : `slab-pool: ${task.name}`,
    ours: measured(task, null),
    baseline: null,
    ratio: null,
    ratioRme: null,
    oursMiBs: null,
  }));
}

const ops = (hz: number): string => Math.round(hz).toLocaleString('en-US');
const pct = (rme: number): string => `±${rme < 10 ? rme.toFixed(1) : rme.toFixed(0)}%`;

function table(rows: readonly Row[]): string {
  const header = ['case', 'ours', 'ops/s', '±', 'vs', 'ops/s', '±', 'ours/vs', '±', 'ours MiB/s'];
  const body = rows.map((r) => [
    r.name,
    r.ours.label,
    ops(r.ours.hz),
    pct(r.ours.rme),
    r.baseline?.label ?? '—',
    r.baseline ? ops(r.baseline.hz) : '—',
    r.baseline ? pct(r.baseline.rme) : '—',
    r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`,
    r.ratioRme === null ? '—' : pct(r.ratioRme),
    r.oursMiBs === null ? '—' : Math.round(r.oursMiBs).toLocaleString('en-US'),
  ]);
  const numeric = new Set([2, 3, 5, 6, 7, 8, 9]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

function cpuTable(rows: readonly CpuSplitRow[]): string {
  const header = ['deflate+inflate, no context', 'bytes', 'wall µs/msg', 'calling-thread CPU µs/msg', 'process CPU µs/msg'];
  const body = rows.map((r) => [r.path, String(r.size), r.wallUs.toFixed(1), r.callingThreadCpuUs.toFixed(1), r.processCpuUs.toFixed(1)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  let args: Args;
  try {
    const parsed = parseMicroArgs(process.argv.slice(2));
    if (parsed === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    args = parsed;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench:micro: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const all = [...parseCases, ...maskCases, ...utf8Cases, ...encodeCases, ...deflateCases];
  const matches = (c: BenchCase): boolean =>
    args.filter === null || `${c.name} ${c.ours.label} vs ${c.baseline?.label ?? ''}`.toLowerCase().includes(args.filter);
  const selected = all.filter(matches);
  const info = machine();

  log(`verifying ${selected.length} cases`);
  for (const c of selected) await c.verify();
  log(`timing ${selected.length} cases, ${args.time} ms per task`);
  const rows = [...(await runCases(selected, args.time, log)), ...(await runSlabPool(args, log))];
  const splitWanted = args.filter === null || 'deflate cpu split'.includes(args.filter);
  const split = splitWanted ? await cpuSplit(Math.max(300, args.time)) : [];

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ machine: info, options: { time: args.time, filter: args.filter }, rows, cpuSplit: split }, null, 2)}\n`);
    return;
  }
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string };
  const out = [
    `${pkg.name} protocol-core microbenchmarks`,
    `machine: ${info.cpu}, ${info.cores} cores (availableParallelism ${info.availableParallelism}), loadavg at start ${info.loadavgAtStart.join(' / ')}`,
    `runtime: node ${info.node} (V8 ${info.v8}), tinybench ${info.tinybench}, ws ${info.ws}, bufferutil ${info.bufferutil}`,
    `time per task: ${args.time} ms${args.filter === null ? '' : `, filter: ${args.filter}`}; ops/s = tinybench mean throughput × ops per call; ± = relative margin of error`,
  ];
  if (rows.length > 0) out.push('', table(rows));
  if (split.length > 0) out.push('', 'Where deflate spends CPU (sequential round trips):', '', cpuTable(split));
  process.stdout.write(`${out.join('\n')}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
