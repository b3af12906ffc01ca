/**
 * bench:addressing — how fast `shard.send(id)` and `shard.sendTo(key)` deliver to connections on
 * other workers of one server, and (with --redis) on another server through Redis.
 *
 *   npm run bench:addressing -- [--workers 4] [--receivers 200] [--keys 100] [--messages 100000]
 *                               [--size 64] [--redis redis://127.0.0.1:6379]
 *
 * Receivers (`ws` clients in this process) connect to the target server; a driver connection on
 * the sending server asks its worker to send --messages messages, round-robin over the receivers'
 * ids (`send(id)`) or over --keys tags (`sendTo(key)`; each key tags receivers/keys connections).
 * Only receivers on other workers than the driver's (across workers) or on the other server
 * (across servers) are targets. The rate is messages delivered per second, from the burst's start
 * until every receiver has all of its messages. The receiving clients run in this one thread, so
 * on a fast server they may be the limit: compare rows, and watch the CPU.
 *
 * Across servers, the target server is a `shardws serve --redis` child process; the sending
 * server runs here, both against the Redis given.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { listen } from '../../src/main/listen.ts';
import type { ShardServer } from '../../src/main/listen.ts';

const APP = fileURLToPath(new URL('./app.ts', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' },
    receivers: { type: 'string', default: '200' },
    keys: { type: 'string', default: '100' },
    messages: { type: 'string', default: '100000' },
    size: { type: 'string', default: '64' },
    redis: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('usage: npm run bench:addressing -- [--workers N] [--receivers N] [--keys N] [--messages N] [--size BYTES] [--redis URL]\n');
  process.exit(0);
}
const workers = Number(values.workers);
const receivers = Number(values.receivers);
const keys = Number(values.keys);
const messages = Number(values.messages);
const size = Number(values.size);
for (const [name, value] of Object.entries({ workers, receivers, keys, messages, size })) {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`--${name} must be a positive integer`);
}
if (keys > receivers) throw new RangeError('--keys must not exceed --receivers');

interface Client {
  readonly ws: WebSocket;
  readonly id: string;
  readonly worker: number;
  received: number;
}

async function open(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const hello = await new Promise<{ id: string; worker: number }>((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as { id: string; worker: number }));
    ws.once('error', reject);
  });
  const client: Client = { ws, id: hello.id, worker: hello.worker, received: 0 };
  ws.on('message', (_data: Buffer, isBinary: boolean) => {
    if (isBinary) client.received++;
  });
  return client;
}

/** Sends `text` and resolves with the next text message. */
function request(client: Client, text: string): Promise<string> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      if (isBinary) return;
      client.ws.off('message', onMessage);
      resolve(data.toString());
    };
    client.ws.on('message', onMessage);
    client.ws.send(text);
  });
}

async function startTarget(redis: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [CLI, 'serve', APP, '--port', '0', '--host', '127.0.0.1', '--workers', String(workers), '--redis', redis, '--log-format', 'json', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`target server exited with ${code}: ${err}`)));
  });
  return { url: `ws://127.0.0.1:${port}/`, child };
}

interface Row {
  readonly mode: string;
  readonly scope: string;
  readonly messages: number;
  readonly seconds: number;
}

async function measure(driver: Client, targets: Client[], mode: 'id' | 'tag', scope: string, keyPrefix: string): Promise<Row> {
  // Keys of their own per scope: the receivers of an earlier row keep their tags.
  const keyOf = (i: number): string => `${keyPrefix}${i % keys}`;
  if (mode === 'tag') {
    for (const [i, t] of targets.entries()) await request(t, `tag:${keyOf(i)}`);
    // Across servers the key → server index is written by the target server's primary after its workers report the tags.
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const names = mode === 'id' ? targets.map((t) => t.id) : [...new Set(targets.map((_, i) => keyOf(i)))];
  // What each target should get: send(id) round-robin over the ids; sendTo(key) every holder of each key sent to.
  const expected = new Map<Client, number>(targets.map((t) => [t, 0]));
  for (let i = 0; i < messages; i++) {
    if (mode === 'id') {
      const t = targets[i % targets.length]!;
      expected.set(t, expected.get(t)! + 1);
    } else {
      const key = names[i % names.length]!;
      for (const [j, t] of targets.entries()) if (keyOf(j) === key) expected.set(t, expected.get(t)! + 1);
    }
  }
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  for (const t of targets) t.received = 0;
  const started = performance.now();
  const sent = request(driver, `burst:${JSON.stringify({ mode, targets: names, count: messages, size })}`);
  await sent;
  const deadline = Date.now() + 120_000;
  while ([...expected].some(([t, n]) => t.received < n)) {
    if (Date.now() > deadline) throw new Error(`${mode} ${scope}: only ${targets.reduce((s, t) => s + t.received, 0)} of ${total} delivered after 120 s`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { mode: mode === 'id' ? 'send(id)' : 'sendTo(key)', scope, messages: total, seconds: (performance.now() - started) / 1000 };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const cluster = values.redis === undefined ? {} : await (async () => {
    const { redisBridge, redisCluster } = await import('../../src/redis.ts');
    return { bridge: redisBridge({ url: values.redis! }), cluster: redisCluster({ url: values.redis! }) };
  })();
  const server: ShardServer = await listen({ app: APP, port: 0, host: '127.0.0.1', workers, logLevel: 'warn', ...cluster });
  const local = `ws://127.0.0.1:${server.address().port}/`;
  const clients: Client[] = [];
  let target: { url: string; child: ChildProcess } | null = null;
  try {
    const driver = await open(local);
    clients.push(driver);
    for (let i = 0; i < receivers; i++) clients.push(await open(local));
    const others = clients.slice(1).filter((c) => c.worker !== driver.worker);
    rows.push(await measure(driver, others, 'id', `across workers (${workers})`, 'w'));
    rows.push(await measure(driver, others, 'tag', `across workers (${workers})`, 'w'));
    if (values.redis !== undefined) {
      target = await startTarget(values.redis);
      const remote: Client[] = [];
      for (let i = 0; i < receivers; i++) remote.push(await open(target.url));
      clients.push(...remote);
      rows.push(await measure(driver, remote, 'id', 'across servers (Redis)', 's'));
      rows.push(await measure(driver, remote, 'tag', 'across servers (Redis)', 's'));
    }
  } finally {
    for (const c of clients) c.ws.terminate();
    target?.child.kill('SIGTERM');
    await server.close();
  }
  process.stdout.write(`\n${messages} messages of ${size} B, ${receivers} receivers, ${keys} keys, ${workers} workers\n\n`);
  process.stdout.write('| call | scope | delivered | seconds | messages/s |\n| --- | --- | ---: | ---: | ---: |\n');
  for (const r of rows) process.stdout.write(`| ${r.mode} | ${r.scope} | ${r.messages} | ${r.seconds.toFixed(2)} | ${Math.round(r.messages / r.seconds)} |\n`);
}

await main();
