/**
 * Presence and addressing across servers through a real redis-server: two shardws servers (2
 * workers each) share one Redis through redisBridge and redisCluster. Counts with
 * `{ scope: 'cluster' }` add every live server's, a server that stops beating stops counting
 * after its ttl, and `send(id)` and `sendTo(key)` reach connections on the other server.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../src/main/listen.ts';
import { redisBridge } from '../src/main/redis-bridge.ts';
import { redisCluster } from '../src/main/redis-cluster.ts';
import { ask, cleanup, fixtureApp, openShardClient, startServer, waitFor, wsUrl } from './e2e/helpers.ts';
import type { TestClient } from './e2e/helpers.ts';
import { RedisServer, hasRedisServer } from './support/redis-server.ts';

// CI installs redis-server (.ci/run), so there a missing binary is a failure, not a skip.
const run = hasRedisServer || process.env.CI === 'true';
// Beats every second: a server's beat must be two seconds late before the others stop counting it.
const TTL = 3;

interface Peer {
  readonly client: TestClient;
  readonly id: string;
}

describe.skipIf(!run)('presence and addressing across servers (needs redis-server: apt-get install redis-server)', () => {
  let redis: RedisServer;
  let a: ShardServer;
  let b: ShardServer;
  let probe: Redis;

  const start = (): Promise<ShardServer> =>
    startServer({ app: fixtureApp('addressable'), bridge: redisBridge({ url: redis.url, maxReconnectDelay: 200 }), cluster: redisCluster({ url: redis.url, ttl: TTL }) });

  beforeAll(async () => {
    redis = await RedisServer.launch();
    a = await start();
    b = await start();
    probe = new Redis(redis.url, { lazyConnect: true, retryStrategy: () => 100 });
    await probe.connect();
  });

  afterAll(async () => {
    probe.disconnect();
    await cleanup();
    await redis.stop();
  });

  /** Polls an async count until it is `expected` (the other servers' shares come with their heartbeats). */
  async function settles(count: () => Promise<number>, expected: number, what: string): Promise<void> {
    let seen: number | null = null;
    let pending = false;
    await waitFor(() => {
      if (!pending) {
        pending = true;
        void count().then((n) => {
          seen = n;
          pending = false;
        });
      }
      return seen === expected;
    }, `${what} to be ${expected} (last ${String(seen)})`, 10_000);
  }

  async function peer(server: ShardServer): Promise<Peer> {
    const { client } = await openShardClient(wsUrl(server, '/'));
    return { client, id: (JSON.parse(client.received[0]!.data.toString()) as { id: string }).id };
  }

  it('counts subscribers and connections on every server, in the app and on the server object', async () => {
    const peers = [await peer(a), await peer(a), await peer(b)];
    for (const p of peers) await ask(p.client, 'sub:lobby', 'subscription:lobby:');
    // Each server's own share is exact at once; the other's arrives with its next heartbeat.
    expect(a.subscriberCount('lobby')).toBe(2);
    await settles(() => b.subscriberCount('lobby', { scope: 'cluster' }), 3, "b's cluster count of lobby");
    await settles(() => a.subscriberCount('lobby', { scope: 'cluster' }), 3, "a's cluster count of lobby");
    expect(await ask(peers[2]!.client, 'ccount:lobby', 'ccount:')).toBe('ccount:lobby:3');
    const total = a.connectionCount() + b.connectionCount();
    await settles(() => a.connectionCount({ scope: 'cluster' }), total, 'the cluster connection count');
    await settles(async () => Number((await ask(peers[0]!.client, 'cconns', 'cconns:')).split(':')[1]), total, "the app's cluster connection count");

    peers[2]!.client.ws.close();
    await peers[2]!.client.waitClosed();
    await settles(() => a.subscriberCount('lobby', { scope: 'cluster' }), 2, 'the count once a subscriber left');
  });

  it('stops counting a server that stops beating, after its ttl, and reaps its tag index entries', async () => {
    // A server that crashed: its last heartbeat said 5 subscribers and one tag, and then nothing.
    // Its entry expires in 5 s: the first count below comes well before that.
    const now = Date.now();
    await probe.zadd('shardws:servers', now + 5000, 'crashed');
    await probe.hset('shardws:topics:crashed', 'lobby2', '5');
    await probe.sadd('shardws:tag:ghost', 'crashed');
    await probe.sadd('shardws:tags-of:crashed', 'ghost');
    expect(await a.subscriberCount('lobby2', { scope: 'cluster' })).toBe(5);
    await settles(() => a.subscriberCount('lobby2', { scope: 'cluster' }), 0, 'the crashed server to stop counting');
    // A live server's heartbeat removed it, and its entries in the tag index.
    await settles(() => probe.scard('shardws:tag:ghost'), 0, 'the reaper');
    expect(await probe.zscore('shardws:servers', 'crashed')).toBeNull();
  });

  it('sends to and closes a connection on the other server by id', async () => {
    const here = await peer(a);
    const there = await peer(b);
    expect(await ask(here.client, `send:${there.id}:across servers`, 'sent:')).toBe('sent:forwarded');
    await waitFor(() => there.client.texts.includes('across servers'), 'the message on the other server');
    expect(a.send(there.id, 'from server a')).toBe('forwarded');
    await waitFor(() => there.client.texts.includes('from server a'), "server a's message");
    expect(await ask(here.client, `close:${there.id}`, 'closed:')).toBe('closed:forwarded');
    expect(await there.client.waitClosed()).toEqual({ code: 4001, reason: 'revoked' });
  });

  it('sends to and closes every connection with a tag on every server, without a broker subscription per key', async () => {
    const tagged = [await peer(a), await peer(a), await peer(b), await peer(b)];
    const other = await peer(b);
    for (const p of tagged) await ask(p.client, 'tag:user-42', 'tagged:');
    await ask(other.client, 'tag:user-43', 'tagged:');
    // The index has both servers for the key, and no channel was made for it.
    await settles(() => probe.scard('shardws:tag:user-42'), 2, 'both servers in the tag index');
    const channels = (await probe.pubsub('CHANNELS', 'shardws:*')) as string[];
    expect(channels.filter((c) => c.includes('user-42'))).toEqual([]);

    const sender = await peer(a);
    sender.client.ws.send('sendto:user-42:hello user 42');
    for (const p of tagged) await waitFor(() => p.client.texts.includes('hello user 42'), 'the tagged message on every server');
    b.sendTo('user-42', 'from server b');
    for (const p of tagged) await waitFor(() => p.client.texts.includes('from server b'), "server b's tagged message");
    expect(other.client.texts.filter((t) => t.includes('user 42') || t.includes('server b'))).toEqual([]);

    a.closeAll('user-42', 4002, 'signed out everywhere');
    for (const p of tagged) expect(await p.client.waitClosed()).toEqual({ code: 4002, reason: 'signed out everywhere' });
    expect(other.client.closeEvent).toBeNull();
    // The last holder gone, each server leaves the index.
    await settles(() => probe.scard('shardws:tag:user-42'), 0, 'the tag index');
  });
  it('reports its counts and tags again to a Redis that restarted empty', async () => {
    const here = await peer(a);
    const there = await peer(b);
    await ask(there.client, 'sub:after-restart', 'subscription:');
    await ask(there.client, 'tag:user-r', 'tagged:');
    await settles(() => a.subscriberCount('after-restart', { scope: 'cluster' }), 1, 'the count before the restart');
    // A key no server writes shows that the restarted Redis is empty (the servers may already
    // have reported again by the time the probe is back, so their own keys cannot show it).
    await probe.set('restart-marker', '1');
    await redis.stop();
    await redis.start();
    probe.disconnect();
    probe = new Redis(redis.url, { lazyConnect: true, retryStrategy: () => 100 });
    await probe.connect();
    expect(await probe.exists('restart-marker')).toBe(0);
    await settles(() => a.subscriberCount('after-restart', { scope: 'cluster' }), 1, 'the count after the restart');
    await settles(() => probe.scard('shardws:tag:user-r'), 1, 'the tag index after the restart');
    here.client.ws.send('sendto:user-r:after the restart');
    await waitFor(() => there.client.texts.includes('after the restart'), 'a tagged message after the restart', 10_000);
  });
});
