/**
 * Soaks a multi-worker shardws server with mixed traffic for a given time: echo clients in a
 * loop, broadcast clients fanning messages out across workers (some through the slab pool),
 * rounds of connect/echo/disconnect churn (5,000 connections a round), half of every kind with
 * permessage-deflate. The server runs in a process of its own (the demo app), so the RSS and
 * descriptor counts printed every few seconds are the server's alone.
 *
 *   npm run soak -- --minutes 3 [--workers 2] [--churn 5000] [--echo-clients 100] [--broadcast-clients 50]
 *
 * Exits with 1 when a worker restarted, a message went missing or wrong, or the server's
 * descriptors did not come back to where they started once every client had gone.
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { ServerProcess } from './lib/server-process.ts';
import type { ServerSample } from './lib/server-process.ts';
import { numberOption } from './lib/options.ts';

const USAGE =
  'usage: npm run soak -- [--minutes 5] [--workers 2] [--deflate shared|dedicated] [--churn 5000] [--concurrency 200] [--echo-clients 100] [--broadcast-clients 50] [--interval 5]';

function options() {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '5' },
      workers: { type: 'string', default: '2' },
      deflate: { type: 'string', default: 'shared' },
      churn: { type: 'string', default: '5000' },
      concurrency: { type: 'string', default: '200' },
      'echo-clients': { type: 'string', default: '100' },
      'broadcast-clients': { type: 'string', default: '50' },
      interval: { type: 'string', default: '5' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: string, text: string, min: number): number => numberOption('soak', USAGE, name, text, min);
  if (values.deflate !== 'shared' && values.deflate !== 'dedicated') {
    console.error(`soak: --deflate must be shared or dedicated, got ${values.deflate}\n${USAGE}`);
    process.exit(2);
  }
  return {
    minutes: number('minutes', values.minutes, 0.05),
    workers: number('workers', values.workers, 1),
    deflate: values.deflate as 'shared' | 'dedicated',
    churn: number('churn', values.churn, 1),
    concurrency: number('concurrency', values.concurrency, 1),
    echoClients: number('echo-clients', values['echo-clients'], 0),
    broadcastClients: number('broadcast-clients', values['broadcast-clients'], 0),
    interval: number('interval', values.interval, 1),
  };
}

/** What every kind of traffic counts; `errors` collects what went wrong, by kind. */
const counts = { echo: 0, broadcastSent: 0, broadcastReceived: 0, churned: 0, churnRounds: 0 };
const errors = new Map<string, number>();
const error = (kind: string): void => {
  errors.set(kind, (errors.get(kind) ?? 0) + 1);
};

let running = true;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function opened(ws: WebSocket, timeout = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('open timed out')), timeout);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const SIZES = [16, 64, 256, 1024, 4096, 16_384, 65_536];

/** A message of `size` bytes: compressible JSON-ish text or random-looking binary. */
function message(size: number, i: number): string | Buffer {
  if (i % 2 === 0) return `{"seq":${i},"pad":"${'soak '.repeat(Math.ceil(size / 5))}"}`.slice(0, Math.max(size, 12));
  const bytes = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j++) bytes[j] = (i * 31 + j * 7) & 0xff;
  return bytes;
}

/** A persistent client: sends, waits for its echo, checks it, pauses a little, again. */
async function echoClient(url: string, deflate: boolean, index: number): Promise<void> {
  let i = index;
  while (running) {
    const ws = new WebSocket(url, { perMessageDeflate: deflate });
    let waiting: { resolve: (data: Buffer) => void; reject: (error: Error) => void } | null = null;
    ws.on('message', (data: Buffer) => waiting?.resolve(data));
    ws.on('close', () => waiting?.reject(new Error('closed')));
    ws.on('error', () => {});
    try {
      await opened(ws);
      while (running) {
        const sent = message(SIZES[i % SIZES.length]!, i);
        i++;
        const echo = await new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('echo timed out')), 10_000);
          waiting = {
            resolve: (data) => (clearTimeout(timer), resolve(data)),
            reject: (e) => (clearTimeout(timer), reject(e)),
          };
          ws.send(sent);
        });
        waiting = null;
        if (!echo.equals(Buffer.isBuffer(sent) ? sent : Buffer.from(sent))) error('echo mismatch');
        counts.echo++;
        await sleep(5);
      }
      ws.close(1000);
    } catch (e) {
      if (running) error(`echo client: ${(e as Error).message}`);
      ws.terminate();
      await sleep(100);
    }
  }
}

/** Broadcast clients: one of them publishes every 20 ms (every 25th message 64 KiB, through the pool). */
async function broadcast(url: string, clients: number): Promise<() => Promise<void>> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < clients; i++) {
    const ws = new WebSocket(url, { perMessageDeflate: i % 2 === 0 });
    ws.on('message', () => counts.broadcastReceived++);
    ws.on('error', () => {});
    ws.on('close', (code) => {
      if (running) error(`broadcast client closed with ${code}`);
    });
    await opened(ws);
    sockets.push(ws);
  }
  let i = 0;
  const timer = setInterval(() => {
    if (sockets.length < 2) return;
    const from = sockets[i % sockets.length]!;
    const size = i % 25 === 0 ? 65_536 : 1024;
    from.send(message(size, i++));
    counts.broadcastSent++;
  }, 20);
  return async () => {
    clearInterval(timer);
    for (const ws of sockets) ws.close(1000);
    await sleep(200);
  };
}

/** One churn connection: open, one echo, close; resolves when closed. */
async function churnOnce(url: string, i: number): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: i % 2 === 0 });
  try {
    await opened(ws);
    const sent = `churn ${i} `.repeat(8);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('churn echo timed out')), 10_000);
      ws.once('message', (data) => {
        clearTimeout(timer);
        if (String(data) !== sent) error('churn echo mismatch');
        ws.close(1000);
      });
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.send(sent);
    });
    counts.churned++;
  } catch (e) {
    error(`churn: ${(e as Error).message}`);
    ws.terminate();
  }
}

/** Rounds of `size` connections, `concurrency` at a time, until stopped. */
async function churn(url: string, size: number, concurrency: number, onRound: (ms: number) => void): Promise<void> {
  while (running) {
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, size) }, async () => {
        while (running && next < size) await churnOnce(url, next++);
      }),
    );
    if (next >= size) {
      counts.churnRounds++;
      onRound(Date.now() - started);
    }
  }
}

const mib = (bytes: number): string => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const opts = options();
  const server = await ServerProcess.start({ workers: opts.workers, deflate: opts.deflate, sampleMs: 1000 });
  const start = await server.nextSample();
  const base = `ws://127.0.0.1:${server.port}`;
  console.log(
    `soak: ${opts.minutes} min, ${opts.workers} workers, deflate ${opts.deflate}; ${opts.echoClients} echo clients, ` +
      `${opts.broadcastClients} broadcast clients, churn rounds of ${opts.churn} (${opts.concurrency} at a time); half of each with deflate`,
  );
  console.log(`server at start: rss ${mib(start.rss)}, fds ${start.fds ?? '-'}`);

  const stopBroadcast = await broadcast(`${base}/broadcast`, opts.broadcastClients);
  const echoes = Array.from({ length: opts.echoClients }, (_, i) => echoClient(`${base}/echo`, i % 2 === 0, i * 1000));
  const rounds: { ms: number; rss: number }[] = [];
  const churning = churn(`${base}/echo`, opts.churn, opts.concurrency, (ms) => rounds.push({ ms, rss: server.latest?.rss ?? 0 }));

  const started = Date.now();
  const end = started + opts.minutes * 60_000;
  let last = { at: started, echo: 0, received: 0, churned: 0 };
  let maxRss = start.rss;
  let maxFds = start.fds ?? 0;
  while (Date.now() < end) {
    await sleep(Math.min(opts.interval * 1000, end - Date.now()));
    const s = server.latest!;
    const now = Date.now();
    const seconds = (now - last.at) / 1000;
    const echo = (counts.echo - last.echo) / seconds;
    const received = (counts.broadcastReceived - last.received) / seconds;
    const churned = (counts.churned - last.churned) / seconds;
    maxRss = Math.max(maxRss, ...server.samples.slice(-opts.interval - 1).map((x) => x.rss));
    maxFds = Math.max(maxFds, s.fds ?? 0);
    const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
    console.log(
      `t=${((now - started) / 1000).toFixed(0).padStart(4)}s  msgs/s ${thousands(echo + received + churned).padStart(6)} ` +
        `(echo ${thousands(echo)}, broadcast ${thousands(received)}, churn ${thousands(churned)} conn/s)  ` +
        `open ${String(s.connections).padStart(5)}  rounds ${counts.churnRounds}  rss ${mib(s.rss)}  fds ${s.fds ?? '-'}  restarts ${s.restarts}  errors ${errorCount}`,
    );
    last = { at: now, echo: counts.echo, received: counts.broadcastReceived, churned: counts.churned };
  }

  running = false;
  await Promise.all([churning, ...echoes]);
  await stopBroadcast();
  // Every client gone: the server must come back to where it started. (A thread's event loop
  // opens one descriptor of its own the first time it handles a socket, libuv's reserve for
  // running out of descriptors: hence the slack of 2 for the two workers.)
  const fdsBackAt = (start.fds ?? 0) + opts.workers;
  let idle: ServerSample = await server.nextSample();
  for (let i = 0; i < 20 && (idle.connections > 0 || (idle.fds ?? 0) > fdsBackAt); i++) idle = await server.nextSample();
  const elapsed = (Date.now() - started) / 1000;
  const final = await server.stop();
  const restarts = final?.restarts ?? idle.restarts;
  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  const fdsBack = idle.fds === null || idle.fds <= fdsBackAt;
  const roundMs = rounds.map((r) => r.ms);
  const lines = [
    `soak summary (${elapsed.toFixed(0)} s, ${opts.workers} workers, deflate ${opts.deflate})`,
    `  messages        ${thousands(counts.echo)} echoes, ${thousands(counts.broadcastSent)} broadcasts sent / ${thousands(counts.broadcastReceived)} received, ${thousands(counts.churned)} churn echoes`,
    `  throughput      ${thousands((counts.echo + counts.broadcastReceived + counts.churned) / elapsed)} msgs/s on average (server: ${thousands(idle.messagesIn)} in, ${thousands(idle.messagesOut)} out)`,
    `  churn           ${counts.churnRounds} rounds of ${opts.churn} connections (${thousands(counts.churned)} in all)` +
      (roundMs.length > 0 ? `, ${Math.min(...roundMs)}-${Math.max(...roundMs)} ms a round` : ''),
    `  server RSS      start ${mib(start.rss)}, after round 1 ${rounds[0] ? mib(rounds[0].rss) : '-'}, after the last round ${rounds.at(-1) ? mib(rounds.at(-1)!.rss) : '-'}, end (idle) ${mib(idle.rss)}, max ${mib(maxRss)}`,
    `  server fds      start ${start.fds ?? '-'}, max ${maxFds}, end (idle) ${idle.fds ?? '-'}; connections at the end ${idle.connections}; pool ${idle.pool.pagesFree}/${idle.pool.pagesTotal} pages free`,
    `  restarts        ${restarts}`,
    `  errors          ${errorCount}${errorCount > 0 ? ` (${[...errors.entries()].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}`,
  ];
  console.log(lines.join('\n'));
  for (const line of server.errors.slice(0, 20)) console.log(`  server error log: ${line}`);
  process.exit(restarts > 0 || errorCount > 0 || !fdsBack ? 1 : 0);
}

await main();
