/**
 * Memory per held connection, taken apart: RSS of the whole server process (primary and workers
 * are threads of one process) before and after opening N connections, and the V8 heap spaces of
 * the primary and of one worker, read as they are and again after a full GC in both.
 *
 *   node bench/memory/held-connections.ts [--connections 10000] [--workers 1] [--options JSON]
 *
 * `--options` goes to listen() (e.g. '{"deflate":"shared"}'). The generator is `shardws bench
 * --mode connect` in a child process, so its memory is not counted. The GC figures need
 * --expose-gc, which this script adds by starting itself again. Runs from source: every thread
 * also loads Node's type stripper, a fixed cost that cancels out of the differences.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics } from 'node:v8';
import { listen } from '../../src/index.ts';
import type { ListenOptions } from '../../src/index.ts';
import { heapSpaces, heapTotals } from './heap-spaces.ts';
import type { HeapSpaces } from './heap-spaces.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const again = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '1' },
    options: { type: 'string', default: '{}' },
  },
});
const connections = Number(values.connections);
const extra = JSON.parse(values.options) as ListenOptions;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const rssKiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const get = (port: number, path: string): Promise<HeapSpaces> =>
  new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve(JSON.parse(body) as HeapSpaces));
    })
      .on('error', reject)
      .end();
  });

interface Reading {
  readonly rss: number;
  readonly primary: HeapSpaces;
  readonly worker: HeapSpaces;
}
const read = async (port: number, collect: boolean): Promise<Reading> => {
  if (collect) gc!();
  const worker = await get(port, collect ? '/__heap?gc=1' : '/__heap');
  if (collect) await sleep(3000); // V8 gives freed pages back to the system in the background
  return { rss: rssKiB(), primary: heapSpaces(getHeapSpaceStatistics()), worker };
};

const server = await listen({
  app: fileURLToPath(new URL('heap-app.ts', import.meta.url)),
  port: 0,
  host: '127.0.0.1',
  workers: Number(values.workers),
  logLevel: 'warn',
  ...extra,
});
const { port } = server.address();
await sleep(1000);
const before = await read(port, false);

const generator = spawn(
  process.execPath,
  [`${ROOT}src/cli.ts`, 'bench', `ws://127.0.0.1:${port}/echo`, '--mode', 'connect', '-c', String(connections), '--concurrency', '200', '-d', '12', '--threads', '2', '--json'],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
const exited = new Promise<void>((resolve) => generator.once('exit', () => resolve()));
const started = Date.now();
while (server.stats().connections < connections && Date.now() - started < 60_000) await sleep(100);
const held = server.stats().connections;
await sleep(2000);
const raw = await read(port, false);
const collected = await read(port, true);
await exited;
await server.close();

const perConnection = (r: Reading): string => ((r.rss - before.rss) / held).toFixed(2);
const heap = (spaces: HeapSpaces, space: string): string => {
  const pair = spaces[space];
  return pair === undefined ? '–' : `${(pair[0] / 1024).toFixed(1)} (${(pair[1] / 1024).toFixed(1)})`;
};
const row = (label: string, r: Reading): string => {
  const p = heapTotals(r.primary);
  const w = heapTotals(r.worker);
  return `| ${label} | ${perConnection(r)} | ${heap(r.worker, 'new_space')} | ${heap(r.worker, 'old_space')} | ${w.committed.toFixed(1)} (${w.used.toFixed(1)}) | ${heap(r.primary, 'new_space')} | ${heap(r.primary, 'old_space')} | ${p.committed.toFixed(1)} (${p.used.toFixed(1)}) |`;
};
console.log(`# held connections: ${held} of ${connections}, ${values.workers} worker(s), options ${values.options}\n`);
console.log(`RSS before: ${before.rss} KiB. Heap figures are MiB committed (used); the worker's is the one that answered.\n`);
console.log('| reading | RSS KiB per connection | worker new space | worker old space | worker heap | primary new space | primary old space | primary heap |');
console.log('| --- | ---: | --- | --- | --- | --- | --- | --- |');
console.log(row('before', before));
console.log(row('held, as it is', raw));
console.log(row('held, after a full GC', collected));
