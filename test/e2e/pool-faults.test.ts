/**
 * The SharedArrayBuffer slab pool when a worker dies mid-broadcast: whichever side dies (the
 * worker publishing 256 KiB frames through the pool, or the one writing them to subscribers),
 * every page is back once the server is idle again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { cleanup, clientOn, fixtureApp, openClientsOnEachWorker, openShardClient, startServer, waitFor, wsUrl } from './helpers.ts';
import type { ShardClient } from './helpers.ts';

afterEach(cleanup);

const SIZE = 256 * 1024;
const MIB = 1024 * 1024;

const binaries = (c: ShardClient): number => c.client.received.filter((m) => m.isBinary).length;

async function command(c: ShardClient, text: string, answer: string): Promise<void> {
  c.client.skipReceived();
  c.client.ws.send(text);
  for (;;) {
    const next = await c.client.next();
    if (!next.isBinary && next.data.toString() === answer) return;
  }
}

/**
 * Publisher on worker 0, two subscribers on worker 1 (one reading, one paused so that pages stay
 * held), a flood of 256 KiB publishes under way and the pool seen in use.
 */
async function floodAcross(server: ShardServer): Promise<{ publisher: ShardClient; reader: ShardClient; paused: ShardClient }> {
  const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 2);
  const publisher = clients.find((c) => c.shard === 0)!;
  const [reader, paused] = clients.filter((c) => c.shard === 1) as [ShardClient, ShardClient];
  await command(reader, 'sub', 'subscribed');
  await command(paused, 'sub', 'subscribed');
  paused.client.socket.pause();
  await command(publisher, `flood:${SIZE}`, 'flooding');
  await waitFor(() => binaries(reader) >= 20, 'the reader to receive pooled broadcasts');
  const { pagesFree, pagesTotal } = server.stats().pool;
  expect(pagesFree).toBeLessThan(pagesTotal);
  return { publisher, reader, paused };
}

async function poolIdle(server: ShardServer): Promise<void> {
  await waitFor(
    () => {
      const { pagesFree, pagesTotal, allocations } = server.stats().pool;
      return pagesFree === pagesTotal && allocations === 0;
    },
    'every pool page to be free',
    5000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(server.stats().pool)}`);
  });
}

async function stillEchoes(server: ShardServer): Promise<void> {
  const { client } = await openShardClient(wsUrl(server, '/'));
  expect((await client.request('still serving')).data.toString()).toBe('still serving');
}

describe('the slab pool when a worker dies mid-broadcast', () => {
  it('frees every page when the subscribers’ worker dies and is replaced', async () => {
    const server = await startServer({ app: fixtureApp('pool-flood'), maxBackpressure: 32 * MIB });
    const { publisher, reader, paused } = await floodAcross(server);

    reader.client.ws.send('exit');
    for (const victim of [reader, paused]) {
      victim.client.socket.resume();
      expect((await victim.client.waitClosed()).code).toBe(1006);
    }
    await waitFor(() => server.stats().restarts === 1, 'the worker to be restarted');
    // The flood goes on into the replacement.
    const fresh = await clientOn(server, 1);
    await command(fresh, 'sub', 'subscribed');
    await waitFor(() => binaries(fresh) >= 5, 'the replacement to receive broadcasts');

    await command(publisher, 'stop', 'stopped');
    fresh.client.ws.close();
    await fresh.client.waitClosed();
    await poolIdle(server);
    await stillEchoes(server);
    expect(server.stats().restarts).toBe(1);
  });

  it('frees every page when the publishing worker dies and is replaced', async () => {
    const server = await startServer({ app: fixtureApp('pool-flood'), maxBackpressure: 32 * MIB });
    const { publisher, reader, paused } = await floodAcross(server);

    publisher.client.ws.send('exit');
    expect((await publisher.client.waitClosed()).code).toBe(1006);
    await waitFor(() => server.stats().restarts === 1, 'the worker to be restarted');
    // The subscribers' worker writes out what it holds once the paused reader reads again.
    paused.client.socket.resume();
    expect(reader.client.closeEvent).toBeNull();
    expect(paused.client.closeEvent).toBeNull();
    await poolIdle(server);

    // A new flood from the replacement goes through the pool and frees it again.
    const publisher2 = await clientOn(server, 0);
    const before = binaries(reader);
    await command(publisher2, `flood:${SIZE}`, 'flooding');
    await waitFor(() => binaries(reader) >= before + 10, 'broadcasts from the replacement');
    await command(publisher2, 'stop', 'stopped');
    await poolIdle(server);
    await stillEchoes(server);
    expect(server.stats().restarts).toBe(1);
  });

  it('frees every page when the publisher dies in the same tick as a burst of publishes', async () => {
    const server = await startServer({ app: fixtureApp('pool-flood'), maxBackpressure: 32 * MIB });
    const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 2);
    const publisher = clients.find((c) => c.shard === 0)!;
    const subscribers = clients.filter((c) => c.shard === 1);
    for (const s of subscribers) await command(s, 'sub', 'subscribed');
    // 40 x 256 KiB: most of the 16 MiB pool, in flight to worker 1 when worker 0 exits.
    publisher.client.ws.send(`burst-exit:40:${SIZE}`);
    expect((await publisher.client.waitClosed()).code).toBe(1006);
    await waitFor(() => server.stats().restarts === 1, 'the worker to be restarted');
    await poolIdle(server);
    for (const s of subscribers) expect(s.client.closeEvent).toBeNull();
    await stillEchoes(server);
  });
});
