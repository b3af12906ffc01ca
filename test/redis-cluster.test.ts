/**
 * Both bridge modes on a Redis Cluster started here: three redis-server nodes with
 * `--cluster-enabled yes`, joined by `redis-cli --cluster create`. Topics hash to slots on
 * different nodes; publishes on server A reach subscribers on server B. The app is
 * test/fixtures/apps/numbered-topic.ts.
 */
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisBridge } from '../src/main/redis-bridge.ts';
import type { ShardServer } from '../src/main/listen.ts';
import { cleanup, startServer, waitFor } from './e2e/helpers.ts';
import { RedisCluster, hasRedisCli, hasRedisServer } from './support/redis-server.ts';
import { NUMBERED_APP, StreamPublisher, StreamSubscriber } from './support/stream-clients.ts';

// CI installs redis-server and redis-tools (.ci/run), so there a missing binary is a failure.
const run = (hasRedisServer && hasRedisCli) || process.env.CI === 'true';
const base = (server: ShardServer): string => `ws://127.0.0.1:${server.address().port}`;
const TOPICS = Array.from({ length: 6 }, (_, i) => `room-${i}`);

describe.skipIf(!run)('redis bridge on a Redis Cluster (needs redis-server and redis-cli: apt-get install redis-server redis-tools)', () => {
  let cluster: RedisCluster;
  let nodes: Redis[];
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    cluster = await RedisCluster.start(3);
    nodes = cluster.nodes.map((node) => new Redis(node.url));
  }, 60_000);

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await cleanup();
  });

  afterAll(async () => {
    for (const node of nodes ?? []) node.disconnect();
    await cluster?.stop();
  });

  /** Each node's shard channels, and its keys. */
  const shardChannelsByNode = async (): Promise<string[][]> => Promise.all(nodes.map(async (node) => ((await node.call('PUBSUB', 'SHARDCHANNELS')) as string[]).sort()));
  const keysByNode = async (): Promise<string[][]> => Promise.all(nodes.map(async (node) => ((await node.keys('shardws:*')) as string[]).sort()));

  async function connectAll(at: string, topics: readonly string[]): Promise<StreamSubscriber[]> {
    return Promise.all(
      topics.map(async (topic) => {
        const sub = new StreamSubscriber(topic);
        clients.push(sub);
        await sub.connect(at);
        return sub;
      }),
    );
  }

  async function publishers(at: string, topics: readonly string[]): Promise<StreamPublisher[]> {
    return Promise.all(
      topics.map((topic) => {
        const pub = new StreamPublisher(at, topic);
        clients.push(pub);
        return pub.opened();
      }),
    );
  }

  it('plain mode: publishes cross servers through sharded pub/sub, each topic on the node that owns its slot', async () => {
    const a = await startServer({ app: NUMBERED_APP, workers: 1, bridge: redisBridge({ url: cluster.url }) });
    const b = await startServer({ app: NUMBERED_APP, workers: 1, bridge: redisBridge({ url: cluster.url }) });
    // Plain mode has no ids and no stamp: a subscriber gets the published text itself.
    const received = new Map<string, string[]>(TOPICS.map((t) => [t, []]));
    const listeners = await Promise.all(
      TOPICS.map(async (topic) => {
        const ws = new WebSocket(`${base(b)}/sub?topic=${topic}`);
        clients.push({ close: () => ws.terminate() });
        ws.on('message', (data) => received.get(topic)!.push(data.toString()));
        await new Promise((resolve) => ws.once('open', resolve));
        return ws;
      }),
    );
    expect(listeners).toHaveLength(TOPICS.length);
    await waitFor(() => b.stats().bridge?.topics === TOPICS.length, 'B to subscribe every topic', 15_000);
    // Every topic is a shard channel on exactly one node, and the topics spread over the nodes.
    await expectEventually(async () => (await shardChannelsByNode()).flat().length === TOPICS.length);
    const byNode = await shardChannelsByNode();
    expect(byNode.flat().sort()).toEqual(TOPICS.map((t) => `shardws:${t}`).sort());
    expect(byNode.filter((channels) => channels.length > 0).length).toBeGreaterThan(1);
    // Nothing on the cluster-wide (non-sharded) pub/sub.
    for (const node of nodes) expect(await node.call('PUBSUB', 'CHANNELS')).toEqual([]);

    const pubs = await publishers(base(a), TOPICS);
    for (let i = 0; i < 10; i++) for (const pub of pubs) pub.sendNext('p');
    await waitFor(() => TOPICS.every((t) => received.get(t)?.length === 10), '10 messages per topic on B', 15_000);
    for (const topic of TOPICS) expect(received.get(topic)).toEqual(Array.from({ length: 10 }, (_, i) => `p${i + 1}`));
    expect(b.stats().bridge).toMatchObject({ connected: true, received: 60 });
  });

  it('streams mode: one stream per topic on the node that owns its slot; ids, order and recovery across servers', async () => {
    const a = await startServer({ app: NUMBERED_APP, workers: 1, bridge: redisBridge({ url: cluster.url, mode: 'streams', prefix: 'shardws:s:' }) });
    const b = await startServer({ app: NUMBERED_APP, workers: 1, bridge: redisBridge({ url: cluster.url, mode: 'streams', prefix: 'shardws:s:' }) });
    const subs = await connectAll(base(b), TOPICS);
    const pubs = await publishers(base(a), TOPICS);
    for (let i = 0; i < 20; i++) for (const pub of pubs) pub.sendNext('s');
    await waitFor(() => subs.every((s) => s.delivered.length === 20), '20 messages per topic on B', 15_000);
    for (const sub of subs) {
      expect(sub.numbers('s')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(sub.idsIncrease()).toBe(true);
    }
    const keys = await keysByNode();
    expect(keys.flat().sort()).toEqual(TOPICS.map((t) => `shardws:s:${t}`).sort());
    expect(keys.filter((k) => k.length > 0).length).toBeGreaterThan(1);

    // A client of one topic comes back on the other server with the id of its 10th message.
    const again = new StreamSubscriber(TOPICS[3]!);
    clients.push(again);
    again.delivered.push(...subs[3]!.delivered.slice(0, 10));
    await again.connect(base(a));
    await waitFor(() => again.delivered.length === 20, 'the 10 it missed', 10_000);
    expect(again.recoveries).toEqual([{ topic: TOPICS[3], since: subs[3]!.delivered[9]!.id, replayed: 10, complete: true }]);
    expect(again.delivered).toEqual(subs[3]!.delivered);
  });
});

async function expectEventually(check: () => Promise<boolean>, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
