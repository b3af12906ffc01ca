import { describe, expect, it } from 'vitest';
import { ORIGIN_BYTES, readStreamEnvelope, streamEnvelope } from '../../src/main/bridge-envelope.ts';
import { StreamReader, isComplete } from '../../src/main/stream-reader.ts';
import type { StreamEntry } from '../../src/main/topic-bridge.ts';
import { MemoryStreams } from '../support/memory-streams.ts';

const us = Buffer.alloc(ORIGIN_BYTES, 1);
const them = Buffer.alloc(ORIGIN_BYTES, 2);
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

function setup() {
  const delivered: { topic: string; id: string; text: string; except: StreamEntry['except'] }[] = [];
  let target: StreamReader | null = null;
  const streams = new MemoryStreams(us, (topic, id, entry) => target?.announced(topic, id, entry));
  target = new StreamReader(
    streams,
    (entry) => readStreamEnvelope(entry, us),
    (topic, entry) => delivered.push({ topic, id: entry.id, text: entry.payload.toString(), except: entry.except }),
    () => null,
  );
  let sequence = 0;
  /** Another server publishes `text` to `topic`. */
  const publish = (topic: string, text: string): string => streams.add(topic, streamEnvelope(them, ++sequence, Buffer.from(text), false, null));
  const texts = (topic?: string): string[] => delivered.filter((d) => topic === undefined || d.topic === topic).map((d) => d.text);
  return { streams, reader: target, delivered, publish, texts };
}

describe('StreamReader: following topics', () => {
  it('starts after the last entry there was, then delivers each announced entry once, in order', async () => {
    const { reader, publish, texts, delivered } = setup();
    publish('t', 'old');
    reader.subscribe('t');
    await settle();
    publish('t', 'one');
    publish('t', 'two');
    publish('other', 'not followed');
    expect(texts()).toEqual(['one', 'two']);
    expect(delivered.map((d) => d.id)).toEqual([...delivered.map((d) => d.id)].sort());
    expect(reader.position('t')).toBe(delivered[1]!.id);
    expect(reader.stats()).toMatchObject({ received: 2, topics: 1 });
  });

  it('delivers entries appended while it subscribed, before any announcement after them', async () => {
    const { streams, reader, publish, texts } = setup();
    // Subscribing waits on Redis: entries appended meanwhile come from the read-back.
    streams.ready = false;
    reader.subscribe('t');
    await settle();
    streams.ready = true;
    reader.resync();
    publish('t', 'early');
    await settle();
    publish('t', 'live');
    expect(texts()).toEqual(['early', 'live']);
  });

  it('reads back what was missed while the subscription was interrupted, holding what comes meanwhile, with no duplicate', async () => {
    const { streams, reader, publish, texts } = setup();
    reader.subscribe('t');
    await settle();
    publish('t', 'a');
    reader.interrupted();
    streams.ready = false;
    // Published by others while this server's subscription was away: no announcement reaches it.
    streams.ready = true;
    streams.listening.delete('t');
    publish('t', 'b');
    publish('t', 'c');
    streams.listening.add('t');
    // Subscribed again: an announcement arrives before the read-back runs.
    publish('t', 'd');
    expect(texts()).toEqual(['a']);
    reader.resync();
    await settle();
    publish('t', 'e');
    expect(texts()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('passes this server’s own `except` on, skips entries it cannot read, and stops at unsubscribe', async () => {
    const { streams, reader, publish, texts, delivered } = setup();
    reader.subscribe('t');
    await settle();
    streams.add('t', streamEnvelope(us, 99, Buffer.from('mine'), false, { worker: 1, serial: 5 }));
    streams.add('t', Buffer.from('not an envelope'));
    publish('t', 'theirs');
    expect(texts()).toEqual(['mine', 'theirs']);
    expect(delivered[0]!.except).toEqual({ worker: 1, serial: 5 });
    expect(delivered[1]!.except).toBeNull();
    reader.unsubscribe('t');
    expect(streams.listening.has('t')).toBe(false);
    publish('t', 'after');
    expect(texts()).toEqual(['mine', 'theirs']);
  });
});

describe('StreamReader: recoveries', () => {
  it('replays the entries after `since`, in order, complete while nothing after it was trimmed', async () => {
    const { streams, reader, publish } = setup();
    const ids = ['a', 'b', 'c', 'd'].map((text) => publish('t', text));
    reader.subscribe('t');
    const replay = await reader.replay('t', ids[1]!);
    expect(replay.entries.map((e) => [e.id, e.payload.toString()])).toEqual([
      [ids[2], 'c'],
      [ids[3], 'd'],
    ]);
    expect(replay.complete).toBe(true);
    streams.trim('t', 2);
    expect((await reader.replay('t', ids[0]!)).complete).toBe(false);
    expect((await reader.replay('t', ids[2]!)).complete).toBe(true);
    expect(reader.stats()).toMatchObject({ replays: 3, replayed: 2 + 2 + 1 });
  });

  it('waits for the broker, then answers', async () => {
    const { streams, reader, publish } = setup();
    const first = publish('t', 'a');
    publish('t', 'b');
    streams.ready = false;
    reader.subscribe('t');
    let done = false;
    const replay = reader.replay('t', first).then((r) => {
      done = true;
      return r;
    });
    await settle();
    expect(done).toBe(false);
    streams.ready = true;
    reader.resync();
    expect((await replay).entries.map((e) => e.payload.toString())).toEqual(['b']);
  });
});

describe('isComplete', () => {
  const bounds = (first: string | null, lastGenerated: string, removed: number | null = 1, maxDeleted = '0-0') => ({ first, lastGenerated, maxDeleted, removed });

  it('is true when every entry after `since` is still there', () => {
    expect(isComplete('5-0', bounds('3-0', '9-0'))).toBe(true);
    expect(isComplete('3-0', bounds('3-0', '9-0'))).toBe(true);
    expect(isComplete('9-0', bounds('3-0', '9-0'))).toBe(true);
    // Nothing ever removed: even an id before the first entry misses nothing.
    expect(isComplete('1-0', bounds('3-0', '9-0', 0))).toBe(true);
    // Everything removed, but nothing came after `since`.
    expect(isComplete('9-0', bounds(null, '9-0'))).toBe(true);
    // No stream at all: only a client that has seen nothing misses nothing.
    expect(isComplete('0-0', null)).toBe(true);
  });

  it('is false when some may be gone', () => {
    expect(isComplete('2-0', bounds('3-0', '9-0'))).toBe(false);
    expect(isComplete('2-0', bounds('3-0', '9-0', null))).toBe(false);
    expect(isComplete('5-0', bounds(null, '9-0'))).toBe(false);
    expect(isComplete('5-0', null)).toBe(false);
    // Ids behind the client: the stream was made anew.
    expect(isComplete('10-0', bounds('3-0', '9-0'))).toBe(false);
    // An entry after `since` was deleted (XDEL).
    expect(isComplete('5-0', bounds('3-0', '9-0', 1, '6-0'))).toBe(false);
  });
});
