import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { cleanup, fixtureApp, openClientsOnEachWorker, startServer, waitFor, wsUrl } from './helpers.ts';
import type { Received, ShardClient, TestClient } from './helpers.ts';

const KIB = 1024;
const MIB = 1024 * KIB;

afterEach(cleanup);

const startPubSub = (options: Parameters<typeof startServer>[0] = {}): Promise<ShardServer> =>
  startServer({ app: fixtureApp('pubsub'), ...options });

/** What a client received from publishes, without its greeting and the mesh probes. */
const published = (client: TestClient): Received[] =>
  client.received.filter((m) => {
    const head = m.data.toString('latin1', 0, 9);
    return !head.startsWith('probe:') && !head.startsWith('{"hello":');
  });
const payloads = (client: TestClient): Buffer[] => published(client).map((m) => m.data);
const texts = (client: TestClient): string[] => payloads(client).map((b) => b.toString());

/**
 * Subscriptions reach other workers asynchronously; publish probes from each worker until every
 * other client has one, so both workers know each other's interest before the test proper.
 */
async function meshReady(clients: readonly ShardClient[]): Promise<void> {
  for (const worker of new Set(clients.map((c) => c.shard))) {
    const sender = clients.find((c) => c.shard === worker)!.client;
    const others = clients.filter((c) => c.client !== sender).map((c) => c.client);
    const prefix = `probe:${worker}:`;
    const arrived = (): boolean => others.every((o) => o.received.some((m) => m.data.toString().startsWith(prefix)));
    for (let i = 0; i < 200 && !arrived(); i++) {
      sender.ws.send(`${prefix}${i}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitFor(arrived, `probes from worker ${worker} to reach every subscriber`);
  }
}

/** Opens `perWorker` pub/sub clients on each of the two workers and waits for the mesh. */
async function openSubscribers(server: ShardServer, perWorker: number): Promise<ShardClient[]> {
  const clients = await openClientsOnEachWorker(wsUrl(server, '/'), perWorker);
  await meshReady(clients);
  return clients;
}

function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return out;
}

describe('ws.publish across workers', () => {
  it('delivers every message exactly once, in publish order, to every subscriber but the sender', async () => {
    const server = await startPubSub();
    const clients = await openSubscribers(server, 3);
    const senders = [clients.find((c) => c.shard === 0)!, clients.find((c) => c.shard === 1)!];
    const COUNT = 100;
    for (let i = 0; i < COUNT; i++) {
      for (const [s, sender] of senders.entries()) sender.client.ws.send(`seq:${s}:${i}`);
    }
    for (const [s, sender] of senders.entries()) sender.client.ws.send(`end:${s}`);

    for (const [s, sender] of senders.entries()) {
      const receivers = clients.filter((c) => c !== sender);
      await waitFor(() => receivers.every((r) => texts(r.client).includes(`end:${s}`)), `end marker of sender ${s}`);
    }
    for (const receiver of clients) {
      const got = texts(receiver.client);
      for (const [s, sender] of senders.entries()) {
        const sequence = got.filter((t) => t.startsWith(`seq:${s}:`)).map((t) => Number(t.split(':')[2]));
        if (receiver === sender) {
          expect(sequence).toEqual([]);
          expect(got).not.toContain(`end:${s}`);
        } else {
          expect(sequence).toEqual(Array.from({ length: COUNT }, (_, i) => i));
          expect(got.filter((t) => t === `end:${s}`)).toHaveLength(1);
          // The sequence ends before the end marker (per-publisher order).
          expect(got.lastIndexOf(`seq:${s}:${COUNT - 1}`)).toBeLessThan(got.indexOf(`end:${s}`));
        }
      }
    }
  });

  it('delivers 64 KiB and 1 MiB messages intact and returns every pool page', async () => {
    const server = await startPubSub();
    const clients = await openSubscribers(server, 2);
    const sizes = [64 * KIB, MIB];
    let seed = 0;
    // What each client should get: per sender, in the order it sent.
    const expected: Buffer[][][] = clients.map(() => []);
    for (const sender of [clients.find((c) => c.shard === 0)!, clients.find((c) => c.shard === 1)!]) {
      const batch = sizes.map((size) => pattern(size, ++seed));
      for (const payload of batch) sender.client.ws.send(payload);
      for (const [i, c] of clients.entries()) if (c !== sender) expected[i]!.push(batch);
    }
    const total = (i: number): number => expected[i]!.reduce((sum, batch) => sum + batch.length, 0);
    await waitFor(() => clients.every((c, i) => payloads(c.client).length === total(i)), 'every large message', 10_000);
    for (const [i, c] of clients.entries()) {
      const got = published(c.client);
      expect(got.every((m) => m.isBinary)).toBe(true);
      for (const batch of expected[i]!) {
        // Each message arrives once, intact; one sender's messages arrive in its order.
        const at = batch.map((payload) => got.findIndex((m) => m.data.equals(payload)));
        for (const payload of batch) expect(got.filter((m) => m.data.equals(payload))).toHaveLength(1);
        expect(at[0]).toBeGreaterThanOrEqual(0);
        expect(at[1]).toBeGreaterThan(at[0]!);
      }
    }
    const { pagesTotal } = server.stats().pool;
    await waitFor(() => server.stats().pool.pagesFree === pagesTotal, 'every pool page to be released');
    expect(server.stats().pool.allocations).toBe(0);
  });

  it('holds pool pages while a slow subscriber on another worker needs them, and releases them after', async () => {
    const server = await startPubSub({ maxBackpressure: 64 * MIB, highWaterMark: 64 * KIB });
    const clients = await openSubscribers(server, 1);
    const [sender, slow] = clients;
    slow!.client.socket.pause();
    const COUNT = 12;
    for (let i = 0; i < COUNT; i++) sender!.client.ws.send(pattern(MIB, i));
    const { pagesTotal } = server.stats().pool;
    // More than loopback buffers hold: some 1 MiB frames wait in the slow connection's queue.
    await waitFor(() => server.stats().pool.pagesFree < pagesTotal, 'the pool to hold frames for the slow subscriber');
    slow!.client.socket.resume();
    await waitFor(() => payloads(slow!.client).length === COUNT, 'every 1 MiB message after resuming', 15_000);
    payloads(slow!.client).forEach((data, i) => expect(data.equals(pattern(MIB, i))).toBe(true));
    await waitFor(() => server.stats().pool.pagesFree === pagesTotal, 'every pool page to be released');
  });

  it('stops delivering after unsubscribe and resumes after subscribe', async () => {
    const server = await startPubSub();
    const clients = await openSubscribers(server, 2);
    const sender = clients.find((c) => c.shard === 0)!.client;
    const [leaver, stayer] = clients.filter((c) => c.shard === 1).map((c) => c.client);
    leaver!.ws.send('unsub');
    await waitFor(() => texts(leaver!).includes('unsubscribed'), 'the unsubscribe to be acknowledged');
    const before = leaver!.received.length;
    for (let i = 0; i < 20; i++) sender.ws.send(`after-unsub:${i}`);
    sender.ws.send('end-1');
    await waitFor(() => texts(stayer!).includes('end-1'), 'the other subscriber on the same worker to get everything');
    expect(texts(stayer!).filter((t) => t.startsWith('after-unsub:'))).toHaveLength(20);
    expect(leaver!.received.length).toBe(before);

    leaver!.ws.send('sub');
    await waitFor(() => texts(leaver!).includes('subscribed'), 'the subscribe to be acknowledged');
    sender.ws.send('end-2');
    await waitFor(() => texts(leaver!).includes('end-2'), 'delivery to resume after subscribing again');
    expect(texts(leaver!).filter((t) => t.startsWith('after-unsub:'))).toEqual([]);
  });
});

describe('server.publish from the primary', () => {
  it('reaches every subscriber on every worker, text as text and binary as binary', async () => {
    const server = await startPubSub();
    const clients = await openSubscribers(server, 3);
    server.publish('room', 'from the primary');
    server.publish('room', Buffer.from([1, 2, 3]));
    server.publish('room', pattern(MIB, 7));
    await waitFor(() => clients.every((c) => payloads(c.client).length === 3), 'the primary publishes');
    for (const c of clients) {
      const got = published(c.client);
      expect(got[0]!.isBinary).toBe(false);
      expect(got[0]!.data.toString()).toBe('from the primary');
      expect(got[1]!.isBinary).toBe(true);
      expect([...got[1]!.data]).toEqual([1, 2, 3]);
      expect(got[2]!.isBinary).toBe(true);
      expect(got[2]!.data.equals(pattern(MIB, 7))).toBe(true);
    }
    const { pagesTotal } = server.stats().pool;
    await waitFor(() => server.stats().pool.pagesFree === pagesTotal, 'every pool page to be released');
  });

  it('does not deliver to another topic', async () => {
    const server = await startPubSub();
    const clients = await openSubscribers(server, 1);
    server.publish('elsewhere', 'not for room');
    server.publish('room', 'for room');
    await waitFor(() => clients.every((c) => texts(c.client).includes('for room')), 'the room publish');
    for (const c of clients) expect(texts(c.client)).not.toContain('not for room');
  });
});

describe('broadcast with permessage-deflate in shared mode', () => {
  it('compresses each broadcast once and every client, compressing or not, reads it intact', async () => {
    const server = await startPubSub({ deflate: 'shared' });
    const deflating = await openSubscribers(server, 2);
    const plain = await openClientsOnEachWorker(wsUrl(server, '/'), 1, { client: { perMessageDeflate: false } });
    const clients = [...deflating, ...plain];
    await meshReady(clients);
    for (const c of deflating) expect(c.client.ws.extensions).toMatch(/^permessage-deflate/);
    for (const c of plain) expect(c.client.ws.extensions).toBe('');

    const sender = deflating.find((c) => c.shard === 0)!;
    const text = 'shared deflate broadcast, the same bytes for every subscriber. '.repeat(1024);
    const binary = Buffer.alloc(MIB, 'binary, compressible. ');
    const before = clients.map((c) => c.client.socket.bytesRead);
    sender.client.ws.send(text);
    sender.client.ws.send(binary);
    const receivers = clients.filter((c) => c !== sender);
    await waitFor(() => receivers.every((c) => payloads(c.client).length === 2), 'the compressed broadcasts', 10_000);
    for (const c of receivers) {
      const got = published(c.client);
      expect(got[0]!.isBinary).toBe(false);
      expect(got[0]!.data.toString()).toBe(text);
      expect(got[1]!.isBinary).toBe(true);
      expect(got[1]!.data.equals(binary)).toBe(true);
      const onWire = c.client.socket.bytesRead - before[clients.indexOf(c)]!;
      const raw = Buffer.byteLength(text) + binary.length;
      // Both messages compress well: a compressing client reads far less than it gets.
      if (deflating.includes(c)) expect(onWire).toBeLessThan(raw / 4);
      else expect(onWire).toBeGreaterThan(raw);
    }
    const { pagesTotal } = server.stats().pool;
    await waitFor(() => server.stats().pool.pagesFree === pagesTotal, 'every pool page to be released');
  });
});
