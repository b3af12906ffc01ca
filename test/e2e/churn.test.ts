/**
 * Connection churn, CI-sized: rounds of 1,000 connections (half with permessage-deflate) opened,
 * used and closed must leave RSS and descriptors where the first round left them. The full-size
 * version (5,000 per round, for minutes) is `npm run soak`.
 */
import { getHeapStatistics } from 'node:v8';
import { afterAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { WebSocket, cleanup, fixtureApp, openClientsOnEachWorker, startServer, waitFor, withTimeout, wsUrl } from './helpers.ts';
import { MIB, exposeGc, hasProcFd, openFds, rss, sleep } from './resources.ts';

// Before any server starts: worker threads created from now on get `gc` too.
const gc = exposeGc();

afterAll(cleanup);

const ROUND = 1000;
const CONCURRENT = 100;

/** One connection's life: open, one echo (compressible, so deflate works), close; resolves when closed. */
function lifecycle(url: string, i: number): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: i % 2 === 0 });
  const text = `churn ${i} `.repeat(20);
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.on('error', reject);
      ws.on('open', () => ws.send(text));
      ws.on('message', (data) => {
        if (String(data) !== text) reject(new Error(`echo mismatch on connection ${i}`));
        ws.close(1000);
      });
      ws.on('close', (code) => (code === 1000 ? resolve() : reject(new Error(`connection ${i} closed with ${code}`))));
    }),
    `connection ${i} to open, echo and close`,
    10_000,
  ).catch((error: unknown) => {
    ws.terminate();
    throw error;
  });
}

async function round(server: ShardServer): Promise<void> {
  const url = wsUrl(server, '/echo');
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < ROUND) await lifecycle(url, next++);
  };
  await Promise.all(Array.from({ length: CONCURRENT }, lane));
  await waitFor(() => server.stats().connections === 0, 'every connection of the round to be gone');
}

interface Memory {
  readonly rss: number;
  /** Live JS objects in every thread after a full collection: what a leak of objects grows. */
  readonly heapUsed: number;
  /**
   * Memory every thread's V8 heap holds, free pages included: V8 sizes its generations by the
   * allocation rate and keeps pages after a collection, so this grows for a few rounds without a
   * leak (what leaks as objects, heapUsed shows).
   */
  readonly heapCommitted: number;
}

const heapCommitted = (): number => getHeapStatistics().total_physical_size;

/** Collects garbage in this thread and in every worker (through a connection to each), then measures. */
async function collect(server: ShardServer): Promise<Memory> {
  const clients = await openClientsOnEachWorker(wsUrl(server, '/greet'), 1);
  let heapUsed = 0;
  let committed = 0;
  for (const { client } of clients) {
    const reply = JSON.parse((await client.request('gc')).data.toString()) as { gc: boolean; heapUsed: number; heapCommitted: number };
    expect(reply.gc).toBe(gc !== null);
    heapUsed += reply.heapUsed;
    committed += reply.heapCommitted;
  }
  for (const { client } of clients) {
    client.ws.close();
    await client.waitClosed();
  }
  await waitFor(() => server.stats().connections === 0, 'the collecting connections to go');
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(50);
  }
  return { rss: rss(), heapUsed: heapUsed + process.memoryUsage().heapUsed, heapCommitted: committed + heapCommitted() };
}

describe('connection churn', () => {
  it('3 rounds of 1,000 connections opened, used and closed leave RSS within 10% and descriptors at baseline', async () => {
    const server = await startServer({ app: fixtureApp('commands'), deflate: 'shared' });
    // A warm-up round first: what the server creates once (arenas, zlib, JIT code) is not a leak.
    await round(server);
    const before = await collect(server);
    const fds = hasProcFd ? openFds() : 0;
    for (let i = 0; i < 3; i++) await round(server);
    const after = await collect(server);
    const stats = server.stats();
    expect(stats.restarts).toBe(0);
    expect(stats.workers.reduce((sum, w) => sum + w.messagesIn, 0)).toBeGreaterThanOrEqual(4 * ROUND);
    if (hasProcFd) await waitFor(() => openFds() <= fds, `descriptors back to ${fds} (were ${openFds()})`);
    const mib = (m: Memory): string => `rss ${m.rss >> 20}, heap used ${m.heapUsed >> 20}, heap committed ${m.heapCommitted >> 20} MiB`;
    const report = `${mib(before)} -> ${mib(after)}`;
    if (gc !== null) {
      // Every thread collected: 3,000 more connections leave no more live objects than 10% more,
      // and RSS outside the V8 heaps (sockets, zlib, buffers: where a connection's native
      // resources would leak) within 10% of RSS. What V8 keeps committed is not counted: it
      // grows with the allocation rate, more on a busy machine (one CI run: +34 MiB).
      expect(after.heapUsed - before.heapUsed, report).toBeLessThan(before.heapUsed * 0.1);
      const native = (m: Memory): number => m.rss - m.heapCommitted;
      expect(native(after) - native(before), report).toBeLessThan(before.rss * 0.1);
    } else {
      // Without `gc` (the flag refused), garbage may still be around: a fixed, generous margin.
      expect(after.rss - before.rss, report).toBeLessThan(128 * MIB);
    }

    const client = new WebSocket(wsUrl(server, '/echo'));
    const echo = await withTimeout(
      new Promise<string>((resolve, reject) => {
        client.on('open', () => client.send('after the churn'));
        client.on('message', (data) => resolve(String(data)));
        client.on('error', reject);
      }),
      'an echo after the churn',
    );
    expect(echo).toBe('after the churn');
    client.close();
  });
});
