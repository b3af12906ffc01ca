/**
 * `npm run bench:compare`: the same workloads against shardws and its peers, each server started
 * fresh (a child process on this Node, Node 26) for every run, driven by `shardws bench` in
 * another child process. Prints a table with medians, spread and ratios to ws, and writes the
 * figures (JSON), the table (markdown) and a bar chart (SVG) into bench/results/, named by date.
 *
 *   npm run bench:compare -- [--duration 10] [--warmup 2] [--repeat 3] [--only W1,W3]
 *                            [--servers shardws-1,ws] [--pin] [--with-bun] [--profile]
 *                            [--node-flags='--max-semi-space-size=1']
 *   npm run bench:compare -- --report bench/results/DATE-compare.json   (re-render, no runs)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchResult } from '../load/run-load.ts';
import { shardwsCli } from './built-cli.ts';
import { collect, cpuJiffies, freePort, hardFileLimit, start, stop, waitForPort } from './processes.ts';
import { WORKLOADS } from './workloads.ts';
import type { Workload } from './workloads.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVERS_DIR = 'bench/compare/servers';
const BUN_DIR = 'bench/.bun';
const BUN_BIN = `${BUN_DIR}/node_modules/@oven/bun-linux-x64/bin/bun`;

// ---- workloads ---------------------------------------------------------------------------

// ---- servers -----------------------------------------------------------------------------

interface ServerSpec {
  readonly id: string;
  readonly describe: string;
  supports(workload: Workload): boolean;
  /** Command and arguments to start it on `port`. */
  command(port: number, deflate: boolean, nodeFlags: readonly string[]): [string, string[]];
}

const node = process.execPath;
/** The shardws CLI the servers and the generator run: the build, unless --from-source. Set below. */
let cli = '';

/** `shardws serve` with the demo app, `workers` worker threads, and how sockets reach them. */
const shardws = (workers: number, accept: 'transfer' | 'reuseport'): ServerSpec => ({
  id: `shardws-${workers}${accept === 'reuseport' ? '-reuseport' : ''}`,
  describe: `shardws serve (demo app), ${workers} worker thread${workers === 1 ? '' : 's'}${accept === 'reuseport' ? ', --accept reuseport (each worker accepts)' : ''}`,
  supports: () => true,
  command: (port, deflate, flags) => [
    node,
    [...flags, cli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--workers', String(workers), '--accept', accept, '--log-level', 'warn', ...(deflate ? ['--deflate'] : [])],
  ],
});

const SERVERS: readonly ServerSpec[] = [
  shardws(1, 'transfer'),
  shardws(2, 'transfer'),
  shardws(1, 'reuseport'),
  shardws(2, 'reuseport'),
  {
    id: 'ws',
    describe: 'ws 8, one process (bench/compare/servers/ws-server.ts), bufferutil installed',
    supports: () => true,
    command: (port, deflate, flags) => [node, [...flags, `${SERVERS_DIR}/ws-server.ts`, '--port', String(port), ...(deflate ? ['--deflate'] : [])]],
  },
  {
    id: 'cluster-ws',
    describe: 'ws on node:cluster, 2 worker processes (no broadcast across processes)',
    supports: (w) => !w.broadcast,
    command: (port, deflate, flags) => [node, [...flags, `${SERVERS_DIR}/ws-cluster.ts`, '--port', String(port), '--workers', '2', ...(deflate ? ['--deflate'] : [])]],
  },
  {
    id: 'raw-echo',
    describe: 'generator ceiling: a raw TCP echo (net, socket.pipe(socket)) that never parses a frame',
    supports: (w) => w.rawEcho,
    command: (port, _deflate, flags) => [node, [...flags, `${SERVERS_DIR}/raw-echo.ts`, '--port', String(port)]],
  },
  {
    id: 'bun',
    describe: 'Bun.serve websocket (bench/compare/servers/bun-server.ts), only with --with-bun',
    supports: () => true,
    command: (port, deflate) => [`${ROOT}${BUN_BIN}`, [`${SERVERS_DIR}/bun-server.ts`, '--port', String(port), ...(deflate ? ['--deflate'] : [])]],
  },
];

// ---- options -----------------------------------------------------------------------------

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '3' },
    only: { type: 'string' },
    servers: { type: 'string' },
    pin: { type: 'boolean', default: false },
    'with-bun': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    'from-source': { type: 'boolean', default: false },
    threads: { type: 'string' },
    out: { type: 'string', default: 'bench/results' },
    report: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write(`Usage: npm run bench:compare -- [options]

  --duration SECS     measured seconds per run (default 10)
  --warmup SECS       warm-up seconds per run (default 2)
  --repeat N          runs per workload and server; medians are reported (default 3)
  --only W1,W3        workloads (default all: ${WORKLOADS.map((w) => w.id).join(',')})
  --servers a,b       servers (known: ${SERVERS.map((s) => s.id).join(',')}; default: all but bun and the -reuseport ones)
  --pin               server on CPU 0, generator on CPU 1 (taskset); default unpinned
  --threads N         generator threads (default: 1 when pinned, else one per core)
  --with-bun          install Bun into ${BUN_DIR}/ (npm) and include it
  --profile           run Node servers with --cpu-prof into <out>/profiles/
  --node-flags='F'    V8/Node flags for every Node server (not the generator), e.g.
                      --node-flags='--max-semi-space-size=1'; an A/B is two runs
  --from-source       run shardws (server and generator) from src/*.ts under type stripping
                      instead of the build in dist/ (rebuilt first), which is what users run
  --out DIR           where JSON, markdown and SVG go (default bench/results)
  --report FILE.json  run nothing: rebuild the table, markdown and SVG from a saved JSON
`);
  process.exit(0);
}

const duration = Number(values.duration);
/** Flags for the Node servers under test: the same for all of them, so ratios stay fair. */
const serverNodeFlags = values['node-flags'].split(/\s+/).filter((flag) => flag !== '');
const warmup = Number(values.warmup);
const repeat = Number(values.repeat);
if (!(duration > 0) || !(warmup >= 0) || !Number.isInteger(repeat) || repeat < 1) {
  process.stderr.write('bench:compare: --duration > 0, --warmup >= 0 and a whole --repeat >= 1 please\n');
  process.exit(2);
}
const workloads = values.only === undefined ? WORKLOADS : values.only.split(',').map((id) => {
  const w = WORKLOADS.find((x) => x.id === id.trim().toUpperCase());
  if (w === undefined) throw new Error(`unknown workload ${id}`);
  return w;
});
let servers = values.servers === undefined ? SERVERS.filter((s) => (s.id !== 'bun' || values['with-bun']) && !s.id.endsWith('-reuseport')) : values.servers.split(',').map((id) => {
  const s = SERVERS.find((x) => x.id === id.trim());
  if (s === undefined) throw new Error(`unknown server ${id} (known: ${SERVERS.map((x) => x.id).join(', ')})`);
  return s;
});
const notes: string[] = [];

const pin = values.pin;
if (pin && spawnSync('taskset', ['-V']).error !== undefined) {
  process.stderr.write('bench:compare: --pin needs taskset (util-linux), which is not installed\n');
  process.exit(2);
}
if (pin && availableParallelism() < 2) {
  process.stderr.write('bench:compare: --pin needs at least 2 CPUs\n');
  process.exit(2);
}
const generatorThreads = values.threads !== undefined ? Number(values.threads) : pin ? 1 : availableParallelism();

if (servers.some((s) => s.id === 'bun')) {
  if (!existsSync(`${ROOT}${BUN_BIN}`)) {
    if (!values['with-bun']) {
      notes.push('bun skipped: run with --with-bun to install it');
    } else {
      process.stderr.write(`installing Bun into ${BUN_DIR}/ ...\n`);
      const install = spawnSync('npm', ['install', '--prefix', BUN_DIR, '@oven/bun-linux-x64'], { cwd: ROOT, stdio: 'inherit' });
      if (install.status !== 0 || !existsSync(`${ROOT}${BUN_BIN}`)) notes.push('bun skipped: npm install @oven/bun-linux-x64 failed');
    }
  }
  if (!existsSync(`${ROOT}${BUN_BIN}`)) servers = servers.filter((s) => s.id !== 'bun');
}

// ---- process helpers ---------------------------------------------------------------------

// ---- one run -----------------------------------------------------------------------------

interface Run {
  readonly workload: string;
  readonly server: string;
  readonly repeat: number;
  readonly loadBefore: number;
  /** All CPUs' busy time while the generator ran, in % of one core (includes warm-up). */
  readonly machineBusyPercent: number | null;
  readonly result: BenchResult | null;
  readonly failure: string | null;
}

async function runOne(workload: Workload, server: ServerSpec, index: number): Promise<Run> {
  const port = await freePort();
  const profileDir = resolve(ROOT, values.out, 'profiles', `${workload.id}-${server.id}-${index}`);
  const nodeFlags = [...serverNodeFlags, ...(values.profile && server.id !== 'bun' ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])];
  const [command, args] = server.command(port, workload.deflate, nodeFlags);
  const child = start(command, args, pin ? 0 : null, 'pipe');
  const serverErr = collect(child.stderr);
  const loadBefore = loadavg()[0]!;
  try {
    await waitForPort(port, child);
    const benchArgs = [
      cli, 'bench', `ws://127.0.0.1:${port}${workload.path}`, ...workload.args,
      '--duration', String(duration), '--warmup', String(warmup), '--threads', String(generatorThreads),
      '--server-pid', String(child.pid), '--json',
      ...(server.id === 'raw-echo' ? ['--raw-echo'] : []),
    ];
    const jiffies0 = cpuJiffies();
    const generator = start(node, benchArgs, pin ? 1 : null, 'pipe');
    const out = collect(generator.stdout);
    const err = collect(generator.stderr);
    const code = await new Promise<number | null>((resolve) => generator.once('exit', (c) => resolve(c)));
    const jiffies1 = cpuJiffies();
    const machineBusyPercent =
      jiffies0 !== null && jiffies1 !== null && jiffies1.total > jiffies0.total
        ? Math.round(((jiffies1.busy - jiffies0.busy) / (jiffies1.total - jiffies0.total)) * availableParallelism() * 100)
        : null;
    const run = { workload: workload.id, server: server.id, repeat: index, loadBefore, machineBusyPercent };
    if (code !== 0 && code !== 1) return { ...run, result: null, failure: `generator exited ${code}: ${err().trim().split('\n').slice(-3).join(' | ')}` };
    return { ...run, result: JSON.parse(out()) as BenchResult, failure: null };
  } catch (error) {
    return { workload: workload.id, server: server.id, repeat: index, loadBefore, machineBusyPercent: null, result: null, failure: `${(error as Error).message} ${serverErr().trim().slice(-300)}` };
  } finally {
    await stop(child);
  }
}

// ---- figures -----------------------------------------------------------------------------

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Summary {
  readonly workload: string;
  readonly server: string;
  readonly runs: number;
  readonly failures: readonly string[];
  /** The headline figure: median and range over the runs. */
  readonly value: number;
  readonly min: number;
  readonly max: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly generatorCpu: number;
  readonly serverCpu: number | null;
  /** Server CPU time per message (per delivery, per handshake), µs: steadier than rates on a busy machine. */
  readonly serverMicrosPerOp: number | null;
  /** CPU other processes used meanwhile (machine busy − generator − server), % of one core; approximate. */
  readonly othersCpu: number | null;
  readonly rssPerConnectionKiB: number | null;
  readonly held: number | null;
  readonly ratioToWs: number | null;
  /** The same against Bun's, when Bun ran (the bar for per-core efficiency). */
  readonly ratioToBun?: number | null;
}

/** A generator at or above this much of its threads' CPU measured itself as much as the server. */
const GENERATOR_BOUND_PERCENT = 90;

function headline(workload: Workload, r: BenchResult): number {
  if (workload.metric === 'p50') return r.latency.p50;
  if (workload.metric === 'handshakesPerSecond') return r.handshakesPerSecond ?? 0;
  return r.messagesPerSecond;
}

function summarize(workload: Workload, server: string, runs: readonly Run[]): Omit<Summary, 'ratioToWs' | 'ratioToBun'> {
  const ok = runs.filter((r) => r.result !== null).map((r) => r.result!);
  const values = ok.map((r) => headline(workload, r));
  const nullable = (xs: (number | null)[]): number | null => (xs.some((x) => x === null) || xs.length === 0 ? null : median(xs as number[]));
  return {
    workload: workload.id,
    server,
    runs: ok.length,
    failures: runs.filter((r) => r.failure !== null).map((r) => r.failure!),
    value: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    p50: median(ok.map((r) => (workload.metric === 'handshakesPerSecond' ? r.handshakeLatency.p50 : r.latency.p50))),
    p99: median(ok.map((r) => (workload.metric === 'handshakesPerSecond' ? r.handshakeLatency.p99 : r.latency.p99))),
    errors: ok.reduce((sum, r) => sum + r.errors + r.lost, 0),
    generatorCpu: median(ok.map((r) => r.generatorCpuPercent)),
    serverCpu: nullable(ok.map((r) => r.serverCpuPercent)),
    serverMicrosPerOp: nullable(
      ok.map((r) => {
        const rate = workload.metric === 'handshakesPerSecond' ? (r.handshakesPerSecond ?? 0) : r.messagesPerSecond;
        return r.serverCpuPercent === null || rate === 0 ? null : (r.serverCpuPercent / 100) * 1e6 / rate;
      }),
    ),
    othersCpu: nullable(
      runs
        .filter((r) => r.result !== null)
        .map((r) => (r.machineBusyPercent === null || r.result!.serverCpuPercent === null ? null : Math.max(0, r.machineBusyPercent - r.result!.generatorCpuPercent - r.result!.serverCpuPercent))),
    ),
    rssPerConnectionKiB: nullable(ok.map((r) => r.serverRssPerConnectionKiB)),
    held: ok.length === 0 ? null : median(ok.map((r) => r.connections.held)),
  };
}

const fmt = (n: number | null, digits = 0): string =>
  n === null || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(summaries: readonly Summary[], generatorThreads: number): string {
  const lines = [
    '| workload | server | median | range | × ws | × bun | p50 ms | p99 ms | errors | generator CPU % | server CPU % | server µs/op | others CPU % | extra |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  const ratio = (r: number | null | undefined): string => (r === null || r === undefined ? '–' : r.toFixed(2));
  for (const s of summaries) {
    const w = WORKLOADS.find((x) => x.id === s.workload)!;
    const digits = w.metric === 'p50' ? 3 : 0;
    const bound = s.generatorCpu >= GENERATOR_BOUND_PERCENT * generatorThreads ? 'generator-bound' : '';
    const extra = [w.metric === 'handshakesPerSecond' ? `held ${fmt(s.held)}, ${fmt(s.rssPerConnectionKiB, 1)} KiB/conn` : '', bound].filter((x) => x !== '').join('; ');
    if (s.runs === 0) {
      lines.push(`| ${s.workload} | ${s.server} | failed | | | | | | | | | | | ${s.failures[0]?.slice(0, 120) ?? ''} |`);
      continue;
    }
    lines.push(
      `| ${s.workload} | ${s.server} | ${fmt(s.value, digits)} ${w.unit} | ${fmt(s.min, digits)}–${fmt(s.max, digits)} | ` +
        `${ratio(s.ratioToWs)} | ${ratio(s.ratioToBun)} | ${fmt(s.p50, 3)} | ${fmt(s.p99, 3)} | ${fmt(s.errors)} | ` +
        `${fmt(s.generatorCpu)} | ${fmt(s.serverCpu)} | ${fmt(s.serverMicrosPerOp, s.serverMicrosPerOp !== null && s.serverMicrosPerOp < 10 ? 2 : 1)} | ${fmt(s.othersCpu)} | ${extra} |`,
    );
  }
  return lines.join('\n');
}

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One panel per workload, one horizontal bar per server, scaled to the panel's largest value. */
function svgChart(summaries: readonly Summary[], title: string): string {
  const colors: Record<string, string> = { 'shardws-1': '#2b6cb0', 'shardws-2': '#1a4480', 'shardws-1-reuseport': '#3182ce', 'shardws-2-reuseport': '#2c5282', ws: '#c05621', 'cluster-ws': '#dd6b20', 'raw-echo': '#718096', bun: '#805ad5' };
  const width = 760;
  const barHeight = 18;
  const labelWidth = 110;
  const chartWidth = width - labelWidth - 150;
  let y = 40;
  const parts: string[] = [];
  for (const workload of WORKLOADS) {
    const rows = summaries.filter((s) => s.workload === workload.id && s.runs > 0);
    if (rows.length === 0) continue;
    parts.push(`<text x="10" y="${y}" font-weight="bold">${escapeXml(`${workload.id}: ${workload.title}`)}${workload.metric === 'p50' ? ' (lower is better)' : ''}</text>`);
    y += 10;
    const max = Math.max(...rows.map((r) => r.value));
    for (const row of rows) {
      const w = max > 0 ? Math.max(1, (row.value / max) * chartWidth) : 1;
      const digits = workload.metric === 'p50' ? 3 : 0;
      parts.push(
        `<text x="${labelWidth - 6}" y="${y + barHeight - 5}" text-anchor="end">${escapeXml(row.server)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colors[row.server] ?? '#4a5568'}"/>`,
        `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + barHeight - 5}">${escapeXml(`${fmt(row.value, digits)} ${workload.unit}`)}</text>`,
      );
      y += barHeight + 4;
    }
    y += 24;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

// ---- main --------------------------------------------------------------------------------

/** Summaries of every (workload, server) pair in `runs`, with ratios to ws. */
function summarizeAll(runs: readonly Run[]): Summary[] {
  const summaries: Summary[] = [];
  for (const workload of WORKLOADS) {
    const order = (id: string): number => SERVERS.findIndex((server) => server.id === id);
    const serverIds = [...new Set(runs.filter((r) => r.workload === workload.id).map((r) => r.server))].sort((a, b) => order(a) - order(b));
    const partial = serverIds.map((id) => summarize(workload, id, runs.filter((r) => r.workload === workload.id && r.server === id)));
    const against = (id: string, x: (typeof partial)[number]): number | null => {
      const base = partial.find((y) => y.server === id);
      return base !== undefined && base.runs > 0 && x.runs > 0 && base.value > 0 ? x.value / base.value : null;
    };
    for (const x of partial) summaries.push({ ...x, ratioToWs: against('ws', x), ratioToBun: against('bun', x) });
  }
  return summaries;
}

interface Saved {
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly pinned: boolean; readonly generatorThreads?: number };
  readonly placement: string;
  readonly duration: number;
  readonly repeat: number;
  readonly command: string;
  readonly notes: readonly string[];
  readonly runs: readonly Run[];
}

/** Writes the markdown table and the SVG chart next to `jsonPath`, and prints the table. */
function render(saved: Saved, jsonPath: string): void {
  const summaries = summarizeAll(saved.runs);
  const title = `shardws bench:compare ${saved.date}, ${saved.machine.cpus} CPUs, ${saved.machine.pinned ? 'pinned' : 'unpinned'}, ${saved.duration} s × ${saved.repeat}`;
  const stem = jsonPath.replace(/\.json$/, '');
  const notes = saved.notes.map((n) => `\nnote: ${n}`).join('');
  const legend =
    '× ws, × bun: the median over ws\'s or Bun\'s, same workload (W6 is latency: below 1 is better). server µs/op: server CPU time per message, delivery or handshake. ' +
    `generator-bound: the generator used ${GENERATOR_BOUND_PERCENT} % or more of its threads, so the rate says as much about it as about the server (compare server µs/op). ` +
    'raw-echo is the generator ceiling: a TCP echo that never parses a frame, the most the generator can drive through Node sockets.';
  writeFileSync(`${stem}.svg`, svgChart(summaries, title));
  const threads = saved.machine.generatorThreads ?? 1;
  writeFileSync(`${stem}.md`, `${title}\n\n\`${saved.command}\`; ${saved.placement}\n\n${table(summaries, threads)}\n\n${legend}\n${notes}\n`);
  process.stdout.write(`\n${title}\n${saved.placement}\n\n${table(summaries, threads)}\n\n${legend}\n${notes}\n`);
  process.stdout.write(`wrote ${stem}.{json,md,svg}\n`);
}

if (values.report !== undefined) {
  const path = resolve(process.cwd(), values.report);
  const saved = JSON.parse(readFileSync(path, 'utf8')) as Saved;
  render({ ...saved, command: saved.command ?? 'npm run bench:compare' }, path);
  process.exit(0);
}

cli = shardwsCli(values['from-source']);
const machine = {
  cpus: availableParallelism(),
  model: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  pinned: pin,
  generatorThreads,
  openFileLimit: hardFileLimit,
  shardws: values['from-source'] ? 'src/ under type stripping' : 'dist/ (tsc build)',
};
const placement = pin ? 'pinned: server on CPU 0, generator on CPU 1 (taskset)' : 'unpinned: server and generator share every core';
process.stderr.write(
  `bench:compare on ${machine.cpus} × ${machine.model}, Node ${machine.node}, shardws from ${machine.shardws}; ${placement}; generator threads ${generatorThreads}; ` +
    `${duration} s measured after ${warmup} s warm-up, ${repeat} run(s) each\n`,
);
if (serverNodeFlags.length > 0) notes.push(`every Node server ran with ${serverNodeFlags.join(' ')}`);
if (loadavg()[0]! > 0.5) {
  notes.push(`load average was ${loadavg()[0]!.toFixed(2)} at the start: other processes were using the CPUs`);
}

const runs: Run[] = [];
for (const workload of workloads) {
  for (const server of servers) {
    if (!server.supports(workload)) continue;
    for (let i = 0; i < repeat; i++) {
      process.stderr.write(`${workload.id} ${server.id} run ${i + 1}/${repeat} ... `);
      const run = await runOne(workload, server, i);
      runs.push(run);
      const r = run.result;
      process.stderr.write(
        r === null ? `failed: ${run.failure}\n` : `${fmt(headline(workload, r), workload.metric === 'p50' ? 3 : 0)} ${workload.unit}, errors ${r.errors + r.lost}, generator ${r.generatorCpuPercent}% CPU\n`,
      );
    }
  }
}

const date = new Date().toISOString().slice(0, 10);
const outDir = resolve(ROOT, values.out);
const stem = `${date}-compare${values.only === undefined ? '' : `-${workloads.map((w) => w.id).join('-')}`}${pin ? '-pinned' : ''}`;
mkdirSync(outDir, { recursive: true });
const saved: Saved & Record<string, unknown> = {
  date,
  machine,
  placement,
  duration,
  warmup,
  repeat,
  command: `npm run bench:compare -- ${process.argv.slice(2).join(' ')}`.trim(),
  notes,
  servers: servers.map((s) => ({ id: s.id, describe: s.describe })),
  workloads: workloads.map((w) => ({ id: w.id, title: w.title, args: w.args })),
  summaries: summarizeAll(runs),
  runs,
};
writeFileSync(`${outDir}/${stem}.json`, `${JSON.stringify(saved, null, 2)}\n`);
render(saved, `${outDir}/${stem}.json`);
