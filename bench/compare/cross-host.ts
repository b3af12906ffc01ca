/**
 * `npm run bench:cross-host`: deliveries/s across servers through Redis, on one machine. Starts a
 * redis-server and two shardws servers joined by `--redis`, puts the subscribers on server B and
 * the publisher on server A (every delivery crosses Redis), then the same with the publisher on
 * B (all local) for reference. Each server has `--workers` workers (default 1: two servers and
 * Redis already share this machine's cores with the generator).
 *
 *   npm run bench:cross-host -- [--subscribers 200] [--size 256] [--in-flight 64] [--duration 5] [--workers 1]
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
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
  },
});
// Built after the options parse, so a bad option costs no build.
const CLI = shardwsCli(false);


if (spawnSync('redis-server', ['--version']).error !== undefined) {
  console.error('redis-server is not installed (apt-get install redis-server)');
  process.exit(2);
}

const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

const redisPort = await freePort();
const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
children.push(redis);
await waitForPort(redisPort, redis);

const servers: { port: number; child: ChildProcess }[] = [];
for (let i = 0; i < 2; i++) {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--port', String(port), '--host', '127.0.0.1', '--workers', values.workers, '--redis', `redis://127.0.0.1:${redisPort}`, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  children.push(child);
  await waitForPort(port, child);
  servers.push({ port, child });
}
const a = servers[0]!;
const b = servers[1]!;

function bench(publishPort: number): BenchResult {
  const args = [
    CLI, 'bench', `ws://127.0.0.1:${b.port}/broadcast`, '--mode', 'broadcast', '-c', values.subscribers, '-s', values.size,
    '-p', values['in-flight'], '-d', values.duration, '-w', '1', '--publish-url', `ws://127.0.0.1:${publishPort}/broadcast`, '--json',
  ];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.status !== 0 && run.stdout.trim() === '') throw new Error(`bench failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as BenchResult;
}

console.log(`cross-host broadcast, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg()[0]!.toFixed(2)} at start`);
console.log(`2 shardws servers × ${values.workers} worker(s) + redis-server on loopback; ${values.subscribers} subscribers on B, ${values.size} B messages, ${values['in-flight']} in flight\n`);
console.log('| publisher | deliveries/s | p50 ms | p99 ms | errors |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [label, port] of [['on A (through Redis)', a.port], ['on B (local)', b.port]] as const) {
  const r = bench(port);
  console.log(`| ${label} | ${Math.round(r.messagesPerSecond).toLocaleString('en-US')} | ${r.latency.p50.toFixed(3)} | ${r.latency.p99.toFixed(3)} | ${r.errors} |`);
}
process.exit(0);
