/**
 * `npm run bench:cross-host`: deliveries/s across servers through Redis, on one machine, for each
 * bridge mode. Per mode: a fresh redis-server and two shardws servers joined by `--redis`
 * (`--redis --redis-streams` for the streams mode), the subscribers on server B, the publisher
 * on server A (every delivery crosses Redis), then on B for reference (plain mode: all local;
 * streams mode: through Redis all the same, since every delivery comes from the stream). Each
 * server has `--workers` workers (default 1: two servers and Redis already share this machine's
 * cores with the generator).
 *
 * Besides rate and latency, the CPU time the whole path spends per published message (both
 * servers and Redis, from /proc during the measured seconds), and Redis's share of it: what the
 * streams mode costs per message, stated.
 *
 *   npm run bench:cross-host -- [--modes plain,streams] [--subscribers 200] [--size 256] [--in-flight 64] [--duration 5] [--workers 1]
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuMicros } from '../load/proc-stats.ts';
import type { BenchResult } from '../load/run-load.ts';
import { shardwsCli } from './built-cli.ts';
import { freePort, waitForPort } from './processes.ts';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '200' },
    size: { type: 'string', default: '256' },
    'in-flight': { type: 'string', default: '64' },
    duration: { type: 'string', default: '5' },
    workers: { type: 'string', default: '1' },
    modes: { type: 'string', default: 'plain,streams' },
  },
});
const MODES = { plain: [], streams: ['--redis-streams'] } as const satisfies Record<string, readonly string[]>;
type Mode = keyof typeof MODES;
const modes = values.modes.split(',').map((m) => m.trim()) as Mode[];
for (const mode of modes) {
  if (!(mode in MODES)) {
    console.error(`--modes takes plain and/or streams, got "${mode}"`);
    process.exit(2);
  }
}
// Built after the options parse, so a bad option costs no build.
const CLI = shardwsCli(false);


if (spawnSync('redis-server', ['--version']).error !== undefined) {
  console.error('redis-server is not installed (apt-get install redis-server)');
  process.exit(2);
}

const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** A fresh redis-server and two shardws servers joined through it in `mode`. */
async function startPair(mode: Mode): Promise<{ redis: ChildProcess; a: { port: number; child: ChildProcess }; b: { port: number; child: ChildProcess } }> {
  const redisPort = await freePort();
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(redis);
  await waitForPort(redisPort, redis);
  const servers: { port: number; child: ChildProcess }[] = [];
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--port', String(port), '--host', '127.0.0.1', '--workers', values.workers, '--redis', `redis://127.0.0.1:${redisPort}`, ...MODES[mode], '--log-level', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    // Warnings and errors reach the terminal; the server's "listening on" line would split the table.
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      const shown = text.split('\n').filter((line) => line !== '' && !line.startsWith('shardws: listening on'));
      if (shown.length > 0) process.stderr.write(`${shown.join('\n')}\n`);
    });
    children.push(child);
    await waitForPort(port, child);
    servers.push({ port, child });
  }
  return { redis, a: servers[0]!, b: servers[1]! };
}

function bench(subscribePort: number, publishPort: number, pids: readonly number[]): BenchResult {
  const args = [
    CLI, 'bench', `ws://127.0.0.1:${subscribePort}/broadcast`, '--mode', 'broadcast', '-c', values.subscribers, '-s', values.size,
    '-p', values['in-flight'], '-d', values.duration, '-w', '1', '--publish-url', `ws://127.0.0.1:${publishPort}/broadcast`, '--json',
    '--server-pid', pids.join(','),
  ];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.status !== 0 && run.stdout.trim() === '') throw new Error(`bench failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as BenchResult;
}

console.log(`cross-host broadcast, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg()[0]!.toFixed(2)} at start`);
console.log(`2 shardws servers × ${values.workers} worker(s) + redis-server on loopback; ${values.subscribers} subscribers on B, ${values.size} B messages, ${values['in-flight']} in flight\n`);
console.log('CPU µs per publish: both servers and Redis together during the measured seconds (each publish reaches every subscriber); Redis: its share.\n');
console.log('| mode | publisher | deliveries/s | publishes/s | p50 ms | p99 ms | CPU µs per publish | of which Redis | errors | lost |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const mode of modes) {
  const { redis, a, b } = await startPair(mode);
  const pids = [a.child.pid!, b.child.pid!, redis.pid!];
  const rows = [
    ['on A (through Redis)', a.port],
    [mode === 'plain' ? 'on B (local)' : 'on B (through Redis too)', b.port],
  ] as const;
  for (const [label, port] of rows) {
    const redisBefore = cpuMicros([redis.pid!]) ?? 0;
    const allBefore = cpuMicros(pids) ?? 0;
    const r = bench(b.port, port, pids);
    const redisShare = ((cpuMicros([redis.pid!]) ?? 0) - redisBefore) / Math.max(1, (cpuMicros(pids) ?? 0) - allBefore);
    const perPublish = r.serverCpuPercent !== null && r.publishesPerSecond ? (r.serverCpuPercent / 100) * 1e6 / r.publishesPerSecond : null;
    const cells = [
      mode,
      label,
      Math.round(r.messagesPerSecond).toLocaleString('en-US'),
      (r.publishesPerSecond ?? 0).toLocaleString('en-US'),
      r.latency.p50.toFixed(3),
      r.latency.p99.toFixed(3),
      perPublish === null ? 'n/a' : perPublish.toFixed(1),
      perPublish === null ? 'n/a' : (perPublish * redisShare).toFixed(1),
      String(r.errors),
      String(r.lost),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  for (const child of [a.child, b.child, redis]) child.kill('SIGKILL');
}
process.exit(0);
