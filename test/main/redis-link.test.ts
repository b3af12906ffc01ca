/** RedisLink against a real redis-server: readiness, subscriptions kept across reconnects, the events in order. */
import { afterEach, describe, expect, it } from 'vitest';
import { RedisLink } from '../../src/main/redis-link.ts';
import type { RedisLinkEvents } from '../../src/main/redis-link.ts';
import type { BridgeLog } from '../../src/main/topic-bridge.ts';
import { waitFor } from '../e2e/helpers.ts';
import { RedisServer, freePort, hasRedisServer, suiteRedis } from '../support/redis-server.ts';

const run = hasRedisServer || process.env.CI === 'true';
const quiet: BridgeLog = { info() {}, warn() {}, error() {} };

describe.skipIf(!run)('RedisLink (needs redis-server)', () => {
  const suite = suiteRedis();
  const links: RedisLink[] = [];

  afterEach(async () => {
    await Promise.all(links.splice(0).map((link) => link.close()));
  });

  function open(url = suite.server.url) {
    const events: string[] = [];
    const messages: string[] = [];
    const link = new RedisLink({ url, cluster: undefined, maxReconnectDelay: 100 });
    links.push(link);
    const handlers: RedisLinkEvents = {
      message: (channel, message) => messages.push(`${channel.toString()} ${message.toString()}`),
      interrupted: () => events.push('interrupted'),
      resubscribed: () => events.push('resubscribed'),
      down: () => events.push('down'),
      up: () => events.push('up'),
    };
    return { link, events, messages, start: () => link.start(handlers, quiet) };
  }

  it('comes up on a single Redis, subscribes, publishes, and reports up then resubscribed', async () => {
    const { link, events, messages, start } = open();
    await start();
    await waitFor(() => events.includes('resubscribed'), 'the first subscription connection', 10_000);
    expect(events).toEqual(['up', 'resubscribed']);
    expect(link.ready).toBe(true);
    expect(link.sharded).toBe(false);
    expect(await link.subscribe('t:a')).toBe(true);
    await link.publish('t:a', Buffer.from('hello'));
    await waitFor(() => messages.length === 1, 'the message', 5000);
    expect(messages).toEqual(['t:a hello']);
    link.unsubscribe('t:a');
    for (let i = 0; i < 100 && ((await suite.probe.pubsub('NUMSUB', 't:a')) as [string, number])[1] !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(((await suite.probe.pubsub('NUMSUB', 't:a')) as [string, number])[1]).toBe(0);
  });

  it('subscribes again whatever was subscribed, and what came while it was away, after Redis comes back', async () => {
    const { link, events, messages, start } = open();
    await start();
    await link.subscribe('t:kept');
    await suite.server.stop();
    await waitFor(() => events.includes('down'), 'down', 10_000);
    expect(link.ready).toBe(false);
    await expect(link.publish('t:kept', Buffer.from('x'))).rejects.toThrow('unreachable');
    // Subscribed while away: no answer now, subscribed once it is back.
    expect(await link.subscribe('t:new')).toBe(false);
    await suite.server.start();
    await waitFor(() => events.filter((e) => e === 'resubscribed').length === 2, 'resubscribed after the outage', 15_000);
    expect(events.slice(0, 2)).toEqual(['up', 'resubscribed']);
    // The subscription connection says `interrupted` on each close, and ioredis closes it once
    // more for every reconnect attempt that fails while Redis is still starting: at least one,
    // all before `up`. Which connection notices first decides whether `down` comes before it.
    const outage = events.slice(2);
    expect(outage.filter((e) => e !== 'interrupted')).toEqual(['down', 'up', 'resubscribed']);
    expect(outage.indexOf('interrupted')).toBeGreaterThanOrEqual(0);
    expect(outage.lastIndexOf('interrupted')).toBeLessThan(outage.indexOf('up'));
    expect(link.outages).toBe(1);
    await suite.probe.publish('t:kept', 'a');
    await suite.probe.publish('t:new', 'b');
    await waitFor(() => messages.length === 2, 'both channels', 5000);
    expect(messages.sort()).toEqual(['t:kept a', 't:new b']);
  });

  it('starts with Redis away, and connects when it appears', async () => {
    const port = await freePort();
    const late = new RedisServer(port);
    const { link, events, start } = open(late.url);
    await start();
    expect(link.ready).toBe(false);
    expect(link.outages).toBe(1);
    await late.start();
    try {
      await waitFor(() => link.ready, 'the late Redis', 15_000);
      expect(events).toContain('up');
    } finally {
      await link.close();
      await late.stop();
    }
  });
});
