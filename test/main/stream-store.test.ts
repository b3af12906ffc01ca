/** RedisStreamStore against a real redis-server: the append script, its announcements, the reads and the bounds. */
import { afterAll, describe, expect, it } from 'vitest';
import { ORIGIN_BYTES, readNotification, readStreamEnvelope, streamEnvelope } from '../../src/main/bridge-envelope.ts';
import { RedisLink } from '../../src/main/redis-link.ts';
import { RedisStreamStore, STREAM_SCRIPTS } from '../../src/main/stream-store.ts';
import type { Retention } from '../../src/main/stream-store.ts';
import { compareStreamIds } from '../../src/shared/stream-id.ts';
import { waitFor } from '../e2e/helpers.ts';
import { hasRedisServer, suiteRedis } from '../support/redis-server.ts';

const run = hasRedisServer || process.env.CI === 'true';
const origin = Buffer.alloc(ORIGIN_BYTES, 5);
const entry = (sequence: number, text: string): Buffer => streamEnvelope(origin, sequence, Buffer.from(text), false, null);
const text = (bytes: Buffer): string => readStreamEnvelope(bytes, origin)!.payload.toString();

describe.skipIf(!run)('RedisStreamStore (needs redis-server)', () => {
  const suite = suiteRedis();
  const links: RedisLink[] = [];

  afterAll(async () => {
    await Promise.all(links.map((link) => link.close()));
  });

  async function store(prefix: string, retention: Retention = { maxLength: 1000 }) {
    const link = new RedisLink({ url: suite.server.url, cluster: undefined, maxReconnectDelay: 100, scripts: STREAM_SCRIPTS });
    links.push(link);
    const announced: { channel: string; id: string; text: string }[] = [];
    await link.start(
      {
        message(channel, message) {
          const notification = readNotification(message);
          if (notification !== null) announced.push({ channel: channel.toString(), id: notification.id, text: text(notification.entry) });
        },
        interrupted() {},
        resubscribed() {},
        down() {},
        up() {},
      },
      { info() {}, warn() {}, error() {} },
    );
    await waitFor(() => link.ready, 'the link', 10_000);
    return { link, announced, store: new RedisStreamStore(link, prefix, origin, retention) };
  }

  it('appends a batch in order and announces each entry, with its id, on the topic’s channel', async () => {
    const { store: s, announced } = await store('a:');
    expect(await s.listen('t')).toBe(true);
    const ids = await s.append('t', [entry(1, 'one'), entry(2, 'two'), entry(3, 'three')]);
    expect(ids).toHaveLength(3);
    expect(compareStreamIds(ids[0]!, ids[1]!)).toBeLessThan(0);
    expect(compareStreamIds(ids[1]!, ids[2]!)).toBeLessThan(0);
    await waitFor(() => announced.length === 3, 'the announcements', 5000);
    expect(announced).toEqual([
      { channel: 'a:t', id: ids[0], text: 'one' },
      { channel: 'a:t', id: ids[1], text: 'two' },
      { channel: 'a:t', id: ids[2], text: 'three' },
    ]);
    // The stream, read back.
    expect(await s.lastId('t')).toBe(ids[2]);
    expect((await s.range('t', ids[0]!, 10)).map((e) => [e.id, text(e.entry)])).toEqual([
      [ids[1], 'two'],
      [ids[2], 'three'],
    ]);
    expect(await s.range('t', ids[0]!, 1)).toHaveLength(1);
    expect(await s.lastId('nothing')).toBe('0-0');
    // This server's entries by sequence, from a starting point.
    expect(await s.find('t', null, new Set([2, 3, 9]))).toEqual(new Map([
      [2, ids[1]],
      [3, ids[2]],
    ]));
    expect(await s.find('t', ids[1]!, new Set([2, 3]))).toEqual(new Map([[3, ids[2]]]));
  });

  it('trims to the retention, by count (whole nodes) or by age, and reports the bounds', async () => {
    const { store: s } = await store('b:', { maxLength: 10 });
    let sequence = 0;
    for (let i = 0; i < 4; i++) await s.append('t', Array.from({ length: 100 }, () => entry(++sequence, `m${sequence}`)));
    const length = await suite.probe.xlen('b:t');
    expect(length).toBeLessThan(400);
    expect(length).toBeGreaterThanOrEqual(10);
    const bounds = (await s.bounds('t'))!;
    expect(bounds.removed).toBe(400 - length);
    expect(bounds.lastGenerated).toBe(await s.lastId('t'));
    expect(bounds.first).toBe(((await suite.probe.xrange('b:t', '-', '+', 'COUNT', 1)) as [string, string[]][])[0]![0]);
    expect(await s.bounds('nothing')).toBeNull();

    const { store: aged } = await store('c:', { maxAge: 0.05 });
    await aged.append('t', Array.from({ length: 150 }, (_, i) => entry(i + 1, 'old')));
    await new Promise((resolve) => setTimeout(resolve, 150));
    await aged.append('t', [entry(151, 'new')]);
    // MINID ~ trims whole nodes only: some old entries may stay, but a node of them is gone.
    const left = ((await suite.probe.xrangeBuffer('c:t', '-', '+')) as [Buffer, Buffer[]][]).map(([, fields]) => text(fields[1]!));
    expect(left.length).toBeLessThan(151);
    expect(left.at(-1)).toBe('new');
  });
});
