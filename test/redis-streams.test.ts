/**
 * The durable bridge (redisBridge's streams mode) under faults, against a real redis-server:
 * a server SIGKILLed in the middle of a stream of numbered messages, Redis stopped while both
 * servers publish, recovery after a reload, and the ids the app sees. The app is
 * test/fixtures/apps/numbered-topic.ts (each message arrives as `<id> <text>`).
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisBridge } from '../src/main/redis-bridge.ts';
import type { ShardServer } from '../src/main/listen.ts';
import { cleanup, startServer, waitFor } from './e2e/helpers.ts';
import { RedisServer, hasRedisServer } from './support/redis-server.ts';
import { NUMBERED_APP, ServerProcess, StreamPublisher, StreamSubscriber } from './support/stream-clients.ts';

// CI installs redis-server (.ci/run), so there a missing binary is a failure, not a skip.
const run = hasRedisServer || process.env.CI === 'true';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const base = (server: ShardServer): string => `ws://127.0.0.1:${server.address().port}`;

/** Calls `send` every `pause` ms until the returned function is called (and awaited). */
function keepSending(send: () => void, pause: number): () => Promise<void> {
  let sending = true;
  const done = (async () => {
    while (sending) {
      send();
      await sleep(pause);
    }
  })();
  return async () => {
    sending = false;
    await done;
  };
}

describe.skipIf(!run)('redis bridge, streams mode (needs redis-server: apt-get install redis-server)', () => {
  let redis: RedisServer;
  const processes: ServerProcess[] = [];
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    redis = await RedisServer.launch();
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    await cleanup();
  });

  afterAll(async () => {
    await redis.stop();
  });

  const streamsServer = (options: { outageBuffer?: number } = {}): Promise<ShardServer> =>
    startServer({ app: NUMBERED_APP, bridge: redisBridge({ url: redis.url, mode: 'streams', maxReconnectDelay: 100, ...options }) });

  async function subscriber(at: string, topic: string): Promise<StreamSubscriber> {
    const sub = new StreamSubscriber(topic);
    clients.push(sub);
    await sub.connect(at);
    return sub;
  }

  async function publisher(at: string, topic: string, ids = false): Promise<StreamPublisher> {
    const pub = new StreamPublisher(at, topic, ids);
    clients.push(pub);
    return pub.opened();
  }

  it('gives every message one id, the same on every server, and the publisher learns it (withId)', async () => {
    const a = await streamsServer();
    const b = await streamsServer();
    const onA = await subscriber(base(a), 'ids');
    const onB = await subscriber(base(b), 'ids');
    const pub = await publisher(base(a), 'ids', true);
    for (let i = 0; i < 20; i++) pub.sendNext('m');
    await waitFor(() => onA.delivered.length === 20 && onB.delivered.length === 20 && pub.answers.length === 20, '20 messages on both servers', 15_000);
    expect(onA.delivered).toEqual(onB.delivered);
    expect(onA.numbers('m')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(onA.idsIncrease()).toBe(true);
    // The publisher's answers are the same ids, in its order.
    expect(pub.answers).toEqual(onA.delivered.map((d) => `id ${d.id}`));
  });

  it('a server is SIGKILLed mid-stream and restarted: its subscribers reconnect with their last id and get every message exactly once, in order', async () => {
    const a = await streamsServer();
    let b = await new ServerProcess(redis.url).listening();
    processes.push(b);
    // Two subscribers on B: the balancer puts them on its two workers.
    const subs = [await subscriber(b.base, 'kill'), await subscriber(b.base, 'kill')];
    // And one on A whose connection drops and comes back while the topic stays live there.
    const roamer = await subscriber(base(a), 'kill');
    const pub = await publisher(base(a), 'kill');
    const stop = keepSending(() => pub.sendNext(), 2);
    try {
      await waitFor(() => subs.every((s) => s.delivered.length >= 100), '100 messages before the kill', 20_000);
      roamer.close();
      await b.kill();
      await sleep(50);
      await roamer.connect(base(a));
      await waitFor(() => subs.every((s) => s.closed), 'the subscribers to see B gone', 10_000);
      const beforeRestart = pub.sent;
      b = await new ServerProcess(redis.url).listening();
      processes.push(b);
      // Published while B was down: only the replay can bring these.
      expect(pub.sent).toBeGreaterThan(beforeRestart);
      for (const sub of subs) await sub.connect(b.base);
      // The seam: live messages flow on after the replay.
      const reconnectedAt = pub.sent;
      await waitFor(() => subs.every((s) => s.numbers().at(-1)! >= reconnectedAt + 100), '100 live messages after the replay', 20_000);
    } finally {
      await stop();
    }
    const total = pub.sent;
    await waitFor(() => [...subs, roamer].every((s) => s.delivered.length >= total), `all ${total} messages`, 20_000);
    await sleep(100);
    for (const sub of [...subs, roamer]) {
      expect(sub.numbers()).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(sub.idsIncrease()).toBe(true);
      expect(sub.recoveries).toHaveLength(2);
      const resumed = sub.recoveries[1]!;
      expect(resumed.complete).toBe(true);
      expect(resumed.replayed).toBeGreaterThan(0);
    }
  });

  it('Redis stops for seconds while both servers publish: nothing is lost within the buffer bound, past it the oldest go, counted and told', async () => {
    const entryBytes = 32 + 100;
    // A keeps at most 30 publishes while Redis is away; B keeps all of its.
    const a = await streamsServer({ outageBuffer: 30 * entryBytes });
    const b = await streamsServer();
    const subs = [await subscriber(base(a), 'outage'), await subscriber(base(b), 'outage')];
    const pubA = await publisher(base(a), 'outage');
    const pubB = await publisher(base(b), 'outage');
    const stopA = keepSending(() => pubA.sendNext('a', 100), 10);
    const stopB = keepSending(() => pubB.sendNext('b', 100), 10);
    let waited = { a: 0, b: 0 };
    try {
      await waitFor(() => subs.every((s) => s.numbers('a').length >= 20 && s.numbers('b').length >= 20), 'traffic before the outage', 15_000);
      await redis.stop();
      await waitFor(() => a.stats().bridge?.connected === false && b.stats().bridge?.connected === false, 'both servers to notice', 10_000);
      await sleep(2000);
      // A stops before Redis is back, so its last publish is the newest it ever holds: kept whatever the timing.
      await stopA();
      waited = { a: a.stats().bridge!.buffered!, b: b.stats().bridge!.buffered! };
      expect(waited.b).toBeGreaterThan(30);
      expect(waited.a).toBeLessThanOrEqual(30);
      await redis.start();
      await waitFor(() => a.stats().bridge?.connected === true && b.stats().bridge?.connected === true, 'both servers to reconnect', 15_000);
      const afterRestart = pubB.sent;
      await waitFor(() => subs.every((s) => s.numbers('b').at(-1)! >= afterRestart + 20), 'traffic after the outage', 15_000);
    } finally {
      await stopA();
      await stopB();
    }
    await waitFor(() => {
      const statsA = a.stats().bridge!;
      return statsA.published + statsA.dropped === pubA.sent && b.stats().bridge!.published === pubB.sent;
    }, 'every publish settled', 15_000);
    const statsA = a.stats().bridge!;
    const statsB = b.stats().bridge!;
    await waitFor(() => subs.every((s) => s.numbers('b').length === pubB.sent && s.numbers('a').length === pubA.sent - statsA.dropped), 'every message not dropped', 15_000);
    await sleep(100);

    // B kept everything: every message, once, in order, on both servers.
    for (const sub of subs) {
      expect(sub.numbers('b')).toEqual(Array.from({ length: pubB.sent }, (_, i) => i + 1));
      expect(sub.idsIncrease()).toBe(true);
    }
    expect(statsB).toMatchObject({ connected: true, dropped: 0, buffered: 0, bufferedBytes: 0 });
    expect(statsB.outages).toBeGreaterThanOrEqual(1);
    expect(statsB.flushed).toBeGreaterThanOrEqual(waited.b);

    // A dropped the oldest of what waited: one run of missing numbers, as many as it counted, and
    // the rest came once, in order, its newest publish with them.
    expect(statsA.dropped).toBeGreaterThan(0);
    expect(statsA.flushed).toBeGreaterThan(0);
    for (const sub of subs) {
      const got = sub.numbers('a');
      const missing = Array.from({ length: pubA.sent }, (_, i) => i + 1).filter((n) => !got.includes(n));
      expect(missing).toHaveLength(statsA.dropped);
      expect(missing.at(-1)! - missing[0]! + 1).toBe(missing.length);
      expect(got).toEqual([...new Set(got)].sort((x, y) => x - y));
      expect(got.at(-1)).toBe(pubA.sent);
    }
    // Every client of A heard it: down, what was dropped (counted), up. A publish still on its way
    // to the bridge when Redis came back may be dropped behind the flush, so a drop notice may follow up.
    const notices = pubA.notices;
    expect(notices[0]).toEqual({ type: 'down' });
    expect(notices.filter((n) => n.type === 'up')).toHaveLength(1);
    const told = notices.filter((n) => n.type === 'dropped');
    expect(told.reduce((sum, n) => sum + n.count, 0)).toBe(statsA.dropped);
    expect(told.every((n) => n.topics.length === 1 && n.topics[0] === 'outage')).toBe(true);
    expect(pubB.notices.map((n) => n.type)).toEqual(['down', 'up']);
  });

  it('Redis drops the servers’ subscription connections (as its pub/sub output limit does): what they missed is read back from the streams', async () => {
    const a = await streamsServer();
    const b = await streamsServer();
    const subs = [await subscriber(base(a), 'cut'), await subscriber(base(b), 'cut')];
    const pub = await publisher(base(a), 'cut');
    const probe = new Redis(redis.url);
    const stop = keepSending(() => pub.sendNext(), 2);
    try {
      await waitFor(() => subs.every((s) => s.delivered.length >= 50), 'traffic', 10_000);
      for (let cut = 0; cut < 3; cut++) {
        // Publishing goes on through the commands connections meanwhile.
        expect(Number(await probe.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
        const after = pub.sent;
        await waitFor(() => subs.every((s) => s.numbers().at(-1)! >= after + 30), 'traffic after the cut', 10_000);
      }
    } finally {
      await stop();
      probe.disconnect();
    }
    await waitFor(() => subs.every((s) => s.delivered.length >= pub.sent), `all ${pub.sent} messages`, 10_000);
    await sleep(100);
    for (const sub of subs) {
      expect(sub.numbers()).toEqual(Array.from({ length: pub.sent }, (_, i) => i + 1));
      expect(sub.idsIncrease()).toBe(true);
    }
    expect(a.stats().bridge!.outages).toBeGreaterThanOrEqual(3);
  });

  it('a reloaded client gets what it missed; one whose id is older than the retention is told', async () => {
    const a = await startServer({ app: NUMBERED_APP, bridge: redisBridge({ url: redis.url, mode: 'streams', retention: { maxLength: 10 } }) });
    const first = await subscriber(base(a), 'short');
    // withId answers: the publisher learns each id once the entry is in the stream.
    const pub = await publisher(base(a), 'short', true);
    for (let i = 0; i < 5; i++) pub.sendNext();
    await waitFor(() => first.delivered.length === 5, 'five messages', 10_000);
    first.close();
    for (let i = 0; i < 3; i++) pub.sendNext();
    // The three must be in the stream before the client comes back, or they would reach it live
    // (no loss, but nothing to replay: the race one CI run lost).
    await waitFor(() => pub.answers.length === 8, 'the three missed ones stored', 10_000);
    // The same client back (a reloaded page): the three it missed, then live.
    const reloaded = new StreamSubscriber('short');
    clients.push(reloaded);
    reloaded.delivered.push(...first.delivered);
    await reloaded.connect(base(a));
    pub.sendNext();
    await waitFor(() => reloaded.delivered.length === 9, 'the missed three and one live', 10_000);
    expect(reloaded.numbers()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(reloaded.recoveries).toEqual([{ topic: 'short', since: first.lastId, replayed: 3, complete: true }]);

    // Long gone: MAXLEN ~ trims whole nodes of 100 entries, so push well past them.
    for (let i = 0; i < 400; i++) pub.sendNext();
    await waitFor(() => reloaded.delivered.length === 409, 'the rest', 15_000);
    const stale = new StreamSubscriber('short');
    clients.push(stale);
    stale.delivered.push(first.delivered[0]!);
    await stale.connect(base(a));
    expect(stale.recoveries[0]).toMatchObject({ since: first.delivered[0]!.id, complete: false });
    // What the stream still has follows, in order.
    expect(stale.recoveries[0]!.replayed).toBeGreaterThanOrEqual(10);
    expect(stale.recoveries[0]!.replayed).toBeLessThan(409);
    await waitFor(() => stale.delivered.length === 1 + stale.recoveries[0]!.replayed, 'the replay', 10_000);
    expect(stale.numbers().slice(1)).toEqual(Array.from({ length: stale.recoveries[0]!.replayed }, (_, i) => 409 - stale.recoveries[0]!.replayed + i + 1));
  });
});

describe('redisBridge options', () => {
  it('refuses what does not make a bridge, saying why', () => {
    expect(() => redisBridge({ url: 'localhost:6379' })).toThrow('url must be a redis:// or rediss:// URL');
    expect(() => redisBridge({ url: 'redis://x', mode: 'durable' as 'streams' })).toThrow('mode must be plain or streams');
    expect(() => redisBridge({ url: 'redis://x', retention: { maxLength: 5 } })).toThrow("retention and outageBuffer belong to mode: 'streams'");
    expect(() => redisBridge({ url: 'redis://x', mode: 'streams', retention: { maxLength: 0 } })).toThrow('retention.maxLength must be an integer from 1');
    expect(() => redisBridge({ url: 'redis://x', mode: 'streams', retention: { maxAge: 0 } })).toThrow('retention.maxAge must be more than 0 seconds');
    expect(() => redisBridge({ url: 'redis://x', mode: 'streams', retention: {} as { maxAge: number } })).toThrow('retention is { maxLength } or { maxAge }');
    expect(() => redisBridge({ url: 'redis://x', mode: 'streams', outageBuffer: -1 })).toThrow('outageBuffer must be an integer from 0');
    expect(redisBridge({ url: 'redis://x', mode: 'streams' }).durable).toBe(true);
    expect(redisBridge({ url: 'redis://x' }).durable).toBeUndefined();
  });
});
