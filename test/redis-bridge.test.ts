/**
 * Topics across servers through a real redis-server: two shardws servers (2 workers each) share
 * one Redis; the demo's /broadcast relays every message to every other /broadcast client.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisBridge } from '../src/main/redis-bridge.ts';
import type { ShardServer } from '../src/main/listen.ts';
import { TestClient, cleanup, startServer, waitFor, wsUrl } from './e2e/helpers.ts';
import { RedisServer, hasRedisServer } from './support/redis-server.ts';

// CI installs redis-server (.ci/run), so there a missing binary is a failure, not a skip.
const run = hasRedisServer || process.env.CI === 'true';

describe.skipIf(!run)('redis bridge (needs redis-server: apt-get install redis-server)', () => {
  let redis: RedisServer;
  let a: ShardServer;
  let b: ShardServer;
  let probe: Redis;

  beforeAll(async () => {
    redis = await RedisServer.launch();
    a = await startServer({ bridge: redisBridge({ url: redis.url, maxReconnectDelay: 200 }) });
    b = await startServer({ bridge: redisBridge({ url: redis.url, maxReconnectDelay: 200 }) });
    probe = new Redis(redis.url, { lazyConnect: true, retryStrategy: () => 100 });
    await probe.connect();
  });

  afterAll(async () => {
    probe.disconnect();
    await cleanup();
    await redis.stop();
  });

  const channels = async (): Promise<string[]> => ((await probe.pubsub('CHANNELS', 'shardws:*')) as string[]).sort();

  async function clientsOn(server: ShardServer, count: number): Promise<TestClient[]> {
    return Promise.all(Array.from({ length: count }, () => new TestClient(wsUrl(server, '/broadcast')).opened()));
  }

  it('subscribes on Redis only while a local client subscribes', async () => {
    expect(await channels()).toEqual([]);
    const client = await new TestClient(wsUrl(a, '/broadcast')).opened();
    await waitFor(() => a.stats().bridge?.topics === 1, 'the topic on the bridge', 15_000);
    await expectEventually(async () => (await channels()).includes('shardws:broadcast'));
    client.ws.close();
    await waitFor(() => a.stats().bridge?.topics === 0, 'the topic to leave the bridge', 15_000);
    await expectEventually(async () => !(await channels()).includes('shardws:broadcast'));
  });

  it('delivers publishes from either server to every subscriber on both, exactly once and in order, text and binary', async () => {
    const onA = await clientsOn(a, 4);
    const onB = await clientsOn(b, 4);
    await expectEventually(async () => (await probe.pubsub('NUMSUB', 'shardws:broadcast'))[1] === 2);
    const [senderA] = onA;
    const [senderB] = onB;
    const count = 50;
    for (let i = 0; i < count; i++) {
      senderA!.ws.send(`a${i}`);
      senderB!.ws.send(Buffer.from([0xff, 0x00, i]));
    }
    const everyone = [...onA, ...onB];
    for (const client of everyone) {
      const expected = (client === senderA ? 0 : count) + (client === senderB ? 0 : count);
      await waitFor(() => client.received.length >= expected, `${expected} messages`, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(client.received.length).toBe(expected);
      const texts = client.received.filter((m) => !m.isBinary).map((m) => m.data.toString());
      const binaries = client.received.filter((m) => m.isBinary).map((m) => [...m.data]);
      if (client !== senderA) expect(texts).toEqual(Array.from({ length: count }, (_, i) => `a${i}`));
      if (client !== senderB) expect(binaries).toEqual(Array.from({ length: count }, (_, i) => [0xff, 0x00, i]));
    }
    for (const client of everyone) client.ws.close();
  });

  it('keeps local delivery through a Redis outage and resumes cross-server delivery after it', async () => {
    const onA = await clientsOn(a, 2);
    const onB = await clientsOn(b, 2);
    await expectEventually(async () => (await probe.pubsub('NUMSUB', 'shardws:broadcast'))[1] === 2);
    await redis.stop();
    await waitFor(() => a.stats().bridge?.connected === false, 'server a to notice the outage', 15_000);
    onA[0]!.ws.send('during outage');
    await waitFor(() => onA[1]!.texts.includes('during outage'), 'local delivery during the outage', 15_000);
    expect(a.stats().bridge!.outages).toBeGreaterThan(0);

    await redis.start();
    await waitFor(() => a.stats().bridge?.connected === true && b.stats().bridge?.connected === true, 'both bridges to reconnect', 15_000);
    await expectEventually(async () => (await probe.pubsub('NUMSUB', 'shardws:broadcast'))[1] === 2);
    onA[0]!.ws.send('after outage');
    for (const client of onB) await waitFor(() => client.texts.includes('after outage'), 'cross-server delivery after the outage', 10_000);
    expect(onB[0]!.texts).not.toContain('during outage');
  });
});

// Generous: under a loaded CI machine reconnects and subscriptions take their time.
async function expectEventually(check: () => Promise<boolean>, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
