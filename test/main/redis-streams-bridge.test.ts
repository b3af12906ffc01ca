/**
 * redisStreamsBridge (redisBridge's streams mode) as a DurableTopicBridge, against a real
 * redis-server: its parts put together. Entries reach every server with the same ids, a
 * server's own publishes carry the connection they leave out, replays, the notices and counters
 * of an outage, the log line and notice of a full outage buffer, and closing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeDropError } from '../../src/main/stream-outbox.ts';
import { redisStreamsBridge } from '../../src/main/redis-streams-bridge.ts';
import type { BridgeLog, DurableTopicBridge, StreamEntry } from '../../src/main/topic-bridge.ts';
import type { BridgeNotice } from '../../src/shared/app.ts';
import { FIRST_ID } from '../../src/shared/stream-id.ts';
import { waitFor } from '../e2e/helpers.ts';
import { hasRedisServer, suiteRedis } from '../support/redis-server.ts';

const run = hasRedisServer || process.env.CI === 'true';

interface Seen {
  readonly topic: string;
  readonly id: string;
  readonly text: string;
  readonly binary: boolean;
  readonly except: StreamEntry['except'];
}

describe.skipIf(!run)('redisStreamsBridge (needs redis-server)', () => {
  const suite = suiteRedis();
  const bridges: DurableTopicBridge[] = [];

  afterEach(async () => {
    await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  });

  async function bridge(prefix: string, outageBuffer = 1024 * 1024) {
    const b = redisStreamsBridge({ url: suite.server.url, prefix, maxReconnectDelay: 100, cluster: undefined }, { maxLength: 1000 }, outageBuffer);
    bridges.push(b);
    const entries: Seen[] = [];
    const notices: BridgeNotice[] = [];
    const errors: { fields: object; message: string }[] = [];
    const log: BridgeLog = { info() {}, warn() {}, error: (fields, message) => void errors.push({ fields, message }) };
    await b.start(
      {
        // The payload is a view of ioredis's read buffer: copied out at once.
        entry: (topic, entry) => void entries.push({ topic, id: entry.id, text: entry.payload.toString(), binary: entry.binary, except: entry.except }),
        notice: (notice) => void notices.push(notice),
      },
      log,
    );
    await waitFor(() => b.stats().connected, 'the bridge to connect', 10_000);
    return { bridge: b, entries, notices, errors };
  }

  it('delivers every entry of a subscribed topic on every server with one id; only the publisher sees whom it leaves out', async () => {
    const a = await bridge('one:');
    const b = await bridge('one:');
    for (const side of [a, b]) side.bridge.subscribe('room');
    // Delivery starts after the stream's last entry when subscribing; a replay waits for that point.
    await Promise.all([a, b].map((side) => side.bridge.replay('room', FIRST_ID)));
    const first = await a.bridge.append('room', Buffer.from('hello'), false, { worker: 1, serial: 42 });
    const second = await b.bridge.append('room', Buffer.from([1, 2]), true, null);
    await waitFor(() => a.entries.length === 2 && b.entries.length === 2, 'both entries on both', 5000);
    expect(a.entries).toEqual([
      { topic: 'room', id: first, text: 'hello', binary: false, except: { worker: 1, serial: 42 } },
      { topic: 'room', id: second, text: '\x01\x02', binary: true, except: null },
    ]);
    expect(b.entries.map((e) => [e.id, e.except])).toEqual([
      [first, null],
      [second, null],
    ]);
    expect(a.bridge.stats()).toMatchObject({ connected: true, published: 1, received: 2, topics: 1, dropped: 0, buffered: 0, replays: 1, replayed: 0 });
  });

  it('replays a topic after an id, and says whether that is everything', async () => {
    const a = await bridge('two:');
    const ids: string[] = [];
    for (const text of ['a', 'b', 'c']) ids.push(await a.bridge.append('log', Buffer.from(text), false, null));
    a.bridge.subscribe('log');
    const replay = await a.bridge.replay('log', ids[0]!);
    expect(replay.complete).toBe(true);
    expect(replay.entries.map((e) => [e.id, e.payload.toString()])).toEqual([
      [ids[1], 'b'],
      [ids[2], 'c'],
    ]);
    expect(a.bridge.stats()).toMatchObject({ replays: 1, replayed: 2 });
  });

  it('through an outage: tells down and up, keeps publishes and writes them once Redis is back; past the buffer drops the oldest, logs and tells', async () => {
    // Room for two 20-byte payloads with their envelopes, not three.
    const a = await bridge('three:', 2 * 60);
    a.bridge.subscribe('t');
    await a.bridge.replay('t', FIRST_ID);
    await suite.server.stop();
    let down = true;
    try {
      await waitFor(() => !a.bridge.stats().connected, 'the bridge to see Redis gone', 10_000);
      const pending = ['1', '2', '3'].map((n) => a.bridge.append('t', Buffer.from(n.padEnd(20, '.')), false, null));
      // Should the test fail before they settle, closing the bridge rejects them: not unhandled.
      for (const publish of pending) publish.catch(() => {});
      await expect(pending[0]).rejects.toThrow(BridgeDropError);
      expect(a.bridge.stats()).toMatchObject({ connected: false, buffered: 2, dropped: 1 });
      await waitFor(() => a.notices.length === 3, 'the drop notice', 5000);
      expect(a.notices).toEqual([{ type: 'up' }, { type: 'down' }, { type: 'dropped', count: 1, topics: ['t'] }]);
      expect(a.errors.map((e) => e.message)).toEqual([
        'redis bridge: lost the broker, reconnecting; publishes wait in the outage buffer (nothing is delivered meanwhile) and go out in order once it is back',
        'redis bridge: the outage buffer is full; dropped the oldest publishes',
      ]);
      await suite.server.start();
      down = false;
      const [, second, third] = await Promise.all([pending[0]!.catch(() => null), pending[1]!, pending[2]!]);
      await waitFor(() => a.entries.length === 2, 'the kept publishes delivered', 10_000);
      expect(a.entries.map((e) => [e.id, e.text[0]])).toEqual([
        [second, '2'],
        [third, '3'],
      ]);
      expect(a.notices.at(-1)).toEqual({ type: 'up' });
      expect(a.bridge.stats()).toMatchObject({ connected: true, buffered: 0, bufferedBytes: 0, flushed: 2, published: 2, dropped: 1, outages: 1 });
    } finally {
      if (down) await suite.server.start();
    }
  });

  it('rejects what still waits when it closes', async () => {
    const a = await bridge('four:');
    await suite.server.stop();
    try {
      await waitFor(() => !a.bridge.stats().connected, 'the bridge to see Redis gone', 10_000);
      const waiting = a.bridge.append('t', Buffer.from('x'), false, null);
      bridges.splice(bridges.indexOf(a.bridge), 1);
      await a.bridge.close();
      await expect(waiting).rejects.toThrow(BridgeDropError);
    } finally {
      await suite.server.start();
    }
  });
});
