/**
 * `npm run bench:proxy`: what `shardws proxy` gives a single-threaded WebSocket server, in one run.
 * The upstream is the ws 8 comparison server (bench/compare/servers/ws-server.ts), each row a
 * fresh set of processes, driven by `shardws bench` in another:
 *
 * - W3 (4 KiB JSON echo, permessage-deflate): ws with deflate on, directly, against the same ws
 *   without deflate behind `shardws proxy --workers 2 --deflate` (the gateway compresses on
 *   both cores, the upstream sees plain messages). Goal: ≥ 2× direct.
 * - W6 (latency, 64 B echo, 10 connections × 1): ws directly against ws behind the gateway:
 *   the gateway's added latency is the difference of the medians.
 * - W1 (64 B echo, 100 connections × 8): the same pair, for the gateway's CPU per message.
 *
 * Each row reports the rate, p50/p99, and the CPU time per message of the gateway and of the
 * upstream (from /proc), so the cost the gateway adds is read off one table.
 *
 *   npm run bench:proxy -- [--duration 10] [--warmup 2] [--repeat 3] [--only W3,W6,W1]
 *                          [--gateway-workers 2] [--pin] [--from-source] [--profile] [--out bench/results]
 *
 * --pin puts the upstream on CPU 0, the gateway on CPUs 0-1 (it has two workers) and the
 * generator on CPU 1, as bench:compare pins on a 2-core machine: everything shares the two cores,
 * as it would on such a host. Results go into bench/results/DATE-proxy.{json,md}. --profile runs
 * the gateway with --cpu-prof (one profile per thread, into <out>/profiles/proxy-W?-N/; read
 * them with bench/compare/profile-summary.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchResult } from '../load/run-load.ts';
import { shardwsCli } from './built-cli.ts';
import { ROOT, collect, freePort, processCpuSeconds, start, stop, waitForPort } from './processes.ts';
import { WORKLOADS } from './workloads.ts';
import type { Workload } from './workloads.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '3' },
    only: { type: 'string', default: 'W3,W6,W1' },
    'gateway-workers': { type: 'string', default: '2' },
    pin: { type: 'boolean', default: false },
    'from-source': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write(`Usage: npm run bench:proxy -- [options]

  --duration SECS        measured seconds per run (default 10)
  --warmup SECS          warm-up seconds per run (default 2)
  --repeat N             runs per row; medians are reported (default 3)
  --only W3,W6,W1        workloads (default W3,W6,W1)
  --gateway-workers N    shardws proxy --workers (default 2)
  --pin                  upstream on CPU 0, gateway on CPUs 0-1, generator on CPU 1 (taskset)
  --from-source          run shardws from src/*.ts instead of the build in dist/
  --profile              run the gateway with --cpu-prof into <out>/profiles/proxy-W?-N/
  --out DIR              where JSON and markdown go (default bench/results)
`);
  process.exit(0);
}

const duration = Number(values.duration);
const warmup = Number(values.warmup);
const repeat = Number(values.repeat);
const gatewayWorkers = Number(values['gateway-workers']);
if (!(duration > 0) || !(warmup >= 0) || !Number.isInteger(repeat) || repeat < 1 || !Number.isInteger(gatewayWorkers) || gatewayWorkers < 1) {
  process.stderr.write('bench:proxy: --duration > 0, --warmup >= 0, whole --repeat and --gateway-workers >= 1 please\n');
  process.exit(2);
}
const workloads = values.only.split(',').map((id) => {
  const w = WORKLOADS.find((x) => x.id === id.trim().toUpperCase());
  if (w === undefined || !['W1', 'W3', 'W6'].includes(w.id)) throw new Error(`bench:proxy runs W1, W3 and W6, not ${id}`);
  return w;
});
const pin = values.pin;
const node = process.execPath;
const cli = shardwsCli(values['from-source']);
const generatorThreads = pin ? 1 : availableParallelism();

type Setup = 'direct' | 'proxied';

interface Run {
  readonly result: BenchResult | null;
  readonly failure: string | null;
  /** CPU seconds over the generator's run (warm-up included), per process. */
  readonly gatewayCpu: number | null;
  readonly upstreamCpu: number | null;
}

async function runOne(workload: Workload, setup: Setup, index: number): Promise<Run> {
  const upstreamPort = await freePort();
  // Direct: ws speaks deflate itself when the workload compresses. Proxied: never; the gateway does.
  const upstreamDeflate = setup === 'direct' && workload.deflate;
  const upstream = start(node, [`bench/compare/servers/ws-server.ts`, '--port', String(upstreamPort), ...(upstreamDeflate ? ['--deflate'] : [])], pin ? 0 : null, 'pipe');
  const upstreamErr = collect(upstream.stderr);
  let gateway: ChildProcess | null = null;
  try {
    await waitForPort(upstreamPort, upstream);
    let port = upstreamPort;
    if (setup === 'proxied') {
      port = await freePort();
      const profile = values.profile ? ['--cpu-prof', '--cpu-prof-dir', resolve(ROOT, values.out, 'profiles', `proxy-${workload.id}-${index}`)] : [];
      const args = [...profile, cli, 'proxy', `ws://127.0.0.1:${upstreamPort}`, '--host', '127.0.0.1', '--port', String(port), '--workers', String(gatewayWorkers), '--log-level', 'warn', ...(workload.deflate ? ['--deflate'] : [])];
      gateway = pin ? start('taskset', ['-c', '0,1', node, ...args], null, 'pipe') : start(node, args, null, 'pipe');
      await waitForPort(port, gateway);
    }
    const benchArgs = [
      cli, 'bench', `ws://127.0.0.1:${port}${workload.path}`, ...workload.args,
      '--duration', String(duration), '--warmup', String(warmup), '--threads', String(generatorThreads), '--json',
      '--server-pid', [gateway?.pid, upstream.pid].filter((pid) => pid !== undefined).join(','),
    ];
    const gateway0 = gateway === null ? null : processCpuSeconds(gateway.pid!);
    const upstream0 = processCpuSeconds(upstream.pid!);
    const generator = start(node, benchArgs, pin ? 1 : null, 'pipe');
    const out = collect(generator.stdout);
    const err = collect(generator.stderr);
    const code = await new Promise<number | null>((resolve) => generator.once('exit', (c) => resolve(c)));
    const gateway1 = gateway === null ? null : processCpuSeconds(gateway.pid!);
    const upstream1 = processCpuSeconds(upstream.pid!);
    const spent = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : b - a);
    const cpu = { gatewayCpu: spent(gateway0, gateway1), upstreamCpu: spent(upstream0, upstream1) };
    if (code !== 0 && code !== 1) return { result: null, failure: `generator exited ${code}: ${err().trim().split('\n').slice(-3).join(' | ')}`, ...cpu };
    return { result: JSON.parse(out()) as BenchResult, failure: null, ...cpu };
  } catch (error) {
    return { result: null, failure: `${(error as Error).message} ${upstreamErr().trim().slice(-300)}`, gatewayCpu: null, upstreamCpu: null };
  } finally {
    if (gateway !== null) await stop(gateway);
    await stop(upstream);
  }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row {
  readonly workload: string;
  readonly setup: Setup;
  readonly runs: number;
  readonly failures: readonly string[];
  readonly messagesPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  /** CPU time per echoed message, µs: the gateway's, the upstream's. */
  readonly gatewayMicrosPerMessage: number | null;
  readonly upstreamMicrosPerMessage: number | null;
  /** The generator's own CPU, % of one core (median): near its threads' capacity, it set the pace. */
  readonly generatorCpuPercent: number;
  readonly generatorBound: boolean;
}

function summarize(workload: Workload, setup: Setup, runs: readonly Run[]): Row {
  const ok = runs.filter((r) => r.result !== null);
  const perMessage = (pick: (r: Run) => number | null): number | null => {
    const xs = ok.map((r) => {
      const cpu = pick(r);
      const r0 = r.result!;
      // CPU was read over warm-up and measurement together; messages over the measurement only.
      const messages = r0.messagesPerSecond * (duration + warmup);
      return cpu === null || messages === 0 ? null : (cpu * 1e6) / messages;
    });
    return xs.length === 0 || xs.some((x) => x === null) ? null : median(xs as number[]);
  };
  return {
    workload: workload.id,
    setup,
    runs: ok.length,
    failures: runs.filter((r) => r.failure !== null).map((r) => r.failure!),
    messagesPerSecond: median(ok.map((r) => r.result!.messagesPerSecond)),
    p50: median(ok.map((r) => r.result!.latency.p50)),
    p99: median(ok.map((r) => r.result!.latency.p99)),
    errors: ok.reduce((sum, r) => sum + r.result!.errors + r.result!.lost, 0),
    gatewayMicrosPerMessage: setup === 'proxied' ? perMessage((r) => r.gatewayCpu) : null,
    upstreamMicrosPerMessage: perMessage((r) => r.upstreamCpu),
    generatorCpuPercent: median(ok.map((r) => r.result!.generatorCpuPercent)),
    generatorBound: ok.some((r) => r.result!.generatorBound),
  };
}

const fmt = (n: number | null, digits = 0): string => (n === null || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));

const rows: Row[] = [];
for (const workload of workloads) {
  for (const setup of ['direct', 'proxied'] as const) {
    const runs: Run[] = [];
    for (let i = 0; i < repeat; i++) {
      process.stderr.write(`${workload.id} ${setup} run ${i + 1}/${repeat} ...\n`);
      runs.push(await runOne(workload, setup, i + 1));
    }
    rows.push(summarize(workload, setup, runs));
  }
}

const lines = [
  `# bench:proxy — ws 8 directly vs behind shardws proxy (--workers ${gatewayWorkers})`,
  '',
  `${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, Node ${process.versions.node}; ${duration} s runs after ${warmup} s warm-up, medians of ${repeat}; ${pin ? 'pinned (upstream CPU 0, gateway CPUs 0-1, generator CPU 1)' : 'unpinned'}.`,
  `Command: npm run bench:proxy -- ${process.argv.slice(2).join(' ')}`.trimEnd(),
  '',
  '| workload | setup | msg/s | p50 ms | p99 ms | errors | gateway µs/msg | upstream µs/msg | generator CPU % |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
];
for (const row of rows) {
  if (row.runs === 0) {
    lines.push(`| ${row.workload} | ${row.setup} | failed: ${row.failures[0]?.slice(0, 100) ?? ''} | | | | | |`);
    continue;
  }
  lines.push(`| ${row.workload} | ${row.setup} | ${fmt(row.messagesPerSecond)} | ${fmt(row.p50, 3)} | ${fmt(row.p99, 3)} | ${fmt(row.errors)} | ${fmt(row.gatewayMicrosPerMessage, 2)} | ${fmt(row.upstreamMicrosPerMessage, 2)} | ${fmt(row.generatorCpuPercent)}${row.generatorBound ? ' (bound)' : ''} |`);
}
const pair = (id: string): [Row | undefined, Row | undefined] => [rows.find((r) => r.workload === id && r.setup === 'direct'), rows.find((r) => r.workload === id && r.setup === 'proxied')];
lines.push('');
const [w3direct, w3proxied] = pair('W3');
if (w3direct && w3proxied) lines.push(`- W3: proxied / direct = ${fmt(w3proxied.messagesPerSecond / w3direct.messagesPerSecond, 2)}× (goal ≥ 2×).`);
const [w6direct, w6proxied] = pair('W6');
if (w6direct && w6proxied) lines.push(`- W6: the gateway adds ${fmt(w6proxied.p50 - w6direct.p50, 3)} ms at p50 and ${fmt(w6proxied.p99 - w6direct.p99, 3)} ms at p99.`);
const [, w1proxied] = pair('W1');
if (w1proxied) lines.push(`- W1: the gateway spends ${fmt(w1proxied.gatewayMicrosPerMessage, 2)} µs of CPU per echoed message (both legs, both directions).`);
const report = lines.join('\n') + '\n';
process.stdout.write(report);

const outDir = resolve(ROOT, values.out);
mkdirSync(outDir, { recursive: true });
const stamp = new Date().toISOString().slice(0, 10);
writeFileSync(resolve(outDir, `${stamp}-proxy.json`), JSON.stringify({ date: new Date().toISOString(), argv: process.argv.slice(2), duration, warmup, repeat, gatewayWorkers, pin, rows }, null, 2));
writeFileSync(resolve(outDir, `${stamp}-proxy.md`), report);
process.stderr.write(`wrote ${values.out}/${stamp}-proxy.{json,md}\n`);
