import { describe, expect, it } from 'vitest';
import { ORIGIN_BYTES, readStreamEnvelope, streamEnvelope } from '../../src/main/bridge-envelope.ts';
import { BridgeDropError, StreamOutbox } from '../../src/main/stream-outbox.ts';
import { MemoryStreams } from '../support/memory-streams.ts';

const origin = Buffer.alloc(ORIGIN_BYTES, 7);
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function outbox(limit = 1 << 20) {
  const streams = new MemoryStreams(origin);
  const drops: { count: number; topics: readonly string[] }[] = [];
  const refused: string[] = [];
  const box = new StreamOutbox(streams, limit, (count, topics) => drops.push({ count, topics }), (topic) => refused.push(topic));
  let sequence = 0;
  const push = (topic: string, text: string) => {
    sequence++;
    return box.push(topic, streamEnvelope(origin, sequence, Buffer.from(text), false, null), sequence, null);
  };
  /** The payloads in a stream, in its order. */
  const texts = (topic: string): string[] =>
    (streams.streams.get(topic)?.entries ?? []).map((e) => readStreamEnvelope(e.entry, origin)!.payload.toString());
  return { streams, box, push, texts, drops, refused };
}

describe('StreamOutbox', () => {
  it('appends at once while the broker answers, and resolves each publish to its id', async () => {
    const { streams, box, push, texts } = outbox();
    const ids = await Promise.all([push('t', 'a'), push('t', 'b'), push('u', 'c')]);
    expect(ids).toEqual([streams.ids('t')[0], streams.ids('t')[1], streams.ids('u')[0]]);
    expect(texts('t')).toEqual(['a', 'b']);
    expect(box.stats()).toMatchObject({ published: 3, buffered: 0, flushed: 0, dropped: 0 });
  });

  it('keeps one append in flight per topic: what waits behind it goes next, as one batch, in order', async () => {
    const { streams, push, texts } = outbox();
    const all = [push('t', '1'), push('u', 'x'), push('t', '2'), push('t', '3'), push('t', '4')];
    // Topics do not wait for each other.
    expect(streams.calls).toEqual(['append t ×1', 'append u ×1']);
    await Promise.all(all);
    expect(streams.calls).toEqual(['append t ×1', 'append u ×1', 'append t ×3']);
    expect(texts('t')).toEqual(['1', '2', '3', '4']);
  });

  it('keeps publishes while the broker is away and writes them in order, before anything newer', async () => {
    const { streams, box, push, texts } = outbox();
    await push('t', 'before');
    streams.ready = false;
    const waiting = [push('t', 'one'), push('u', 'two'), push('t', 'three')];
    await settle();
    expect(box.stats()).toMatchObject({ buffered: 3, bufferedBytes: expect.any(Number) });
    expect(texts('t')).toEqual(['before']);
    streams.ready = true;
    // Made once the broker is back, before the resume: it goes after what waited.
    const newer = push('t', 'four');
    box.resume();
    await Promise.all([...waiting, newer]);
    expect(texts('t')).toEqual(['before', 'one', 'three', 'four']);
    expect(texts('u')).toEqual(['two']);
    expect(box.stats()).toMatchObject({ published: 5, buffered: 0, bufferedBytes: 0, flushed: 3, dropped: 0 });
  });

  it('drops the oldest waiting publishes past the bound, rejects them, and reports them once per turn', async () => {
    const entryBytes = streamEnvelope(origin, 1, Buffer.from('x0'), false, null).length;
    const { streams, box, push, texts, drops } = outbox(entryBytes * 3);
    streams.ready = false;
    const results = Array.from({ length: 5 }, (_, i) => push(i % 2 === 0 ? 'even' : 'odd', `x${i}`).then(
      (id) => id,
      (error: Error) => error,
    ));
    await settle();
    expect(box.stats()).toMatchObject({ buffered: 3, dropped: 2 });
    expect(drops).toEqual([{ count: 2, topics: ['even', 'odd'] }]);
    streams.ready = true;
    box.resume();
    const settled = await Promise.all(results);
    expect(settled[0]).toBeInstanceOf(BridgeDropError);
    expect(settled[1]).toBeInstanceOf(BridgeDropError);
    expect(settled.slice(2).every((r) => typeof r === 'string')).toBe(true);
    expect([...texts('even'), ...texts('odd')].sort()).toEqual(['x2', 'x3', 'x4']);
    expect(box.stats()).toMatchObject({ published: 3, flushed: 3, dropped: 2, buffered: 0 });
  });

  it('looks for a batch whose answer was lost before writing it again: never two entries for one publish', async () => {
    const { streams, box, push, texts } = outbox();
    await push('t', 'first');
    // The connection breaks after Redis ran the append: its answer is lost.
    streams.loseReplies = 1;
    streams.ready = false;
    const lost = push('t', 'a');
    streams.ready = true;
    const lostToo = push('t', 'b');
    box.resume();
    await settle();
    streams.ready = false;
    const notSent = push('t', 'c');
    await settle();
    expect(texts('t')).toEqual(['first', 'a', 'b']);
    streams.ready = true;
    box.resume();
    const ids = await Promise.all([lost, lostToo, notSent]);
    expect(texts('t')).toEqual(['first', 'a', 'b', 'c']);
    expect(ids).toEqual(streams.ids('t').slice(1));
    expect(box.stats()).toMatchObject({ published: 4, confirmed: 2, flushed: 3, dropped: 0 });
    expect(streams.calls.filter((c) => c.startsWith('find'))).toEqual(['find t after -']);
  });

  it('counts as flushed what was pushed before the loss was noticed and queued behind a lost batch', async () => {
    const { streams, box, push, texts } = outbox();
    await push('t', 'first');
    // The broker goes away with an append on its way; the link has not noticed yet.
    streams.loseReplies = 1;
    const lost = push('t', 'a');
    const behind = push('t', 'b');
    await settle();
    streams.ready = false;
    expect(box.stats().buffered).toBe(1);
    streams.ready = true;
    box.resume();
    await Promise.all([lost, behind]);
    expect(texts('t')).toEqual(['first', 'a', 'b']);
    expect(box.stats()).toMatchObject({ published: 3, flushed: 2, buffered: 0 });
  });

  it('writes again, in its place, a publish whose answer was lost and that Redis never appended', async () => {
    const { streams, box, push, texts } = outbox();
    // Sent, but it never got there; the connection is up again at once (no 'up' will come).
    streams.vanish = 1;
    const a = push('t', 'a');
    await settle();
    // Made after it: waits behind it.
    const b = push('t', 'b');
    await Promise.all([a, b]);
    expect(texts('t')).toEqual(['a', 'b']);
    expect(box.stats()).toMatchObject({ published: 2, confirmed: 0 });
  });

  it('rejects a publish Redis refuses, counts it as dropped, and does not retry it', async () => {
    const { streams, box, push, texts, refused } = outbox();
    streams.refuse = 1;
    await expect(push('t', 'no')).rejects.toThrow('OOM');
    await push('t', 'yes');
    expect(texts('t')).toEqual(['yes']);
    expect(refused).toEqual(['t']);
    expect(box.stats()).toMatchObject({ published: 1, dropped: 1 });
  });

  it('rejects what still waits when it closes, and anything pushed after', async () => {
    const { streams, box, push } = outbox();
    streams.ready = false;
    const waiting = push('t', 'a');
    box.close();
    await expect(waiting).rejects.toBeInstanceOf(BridgeDropError);
    await expect(push('t', 'b')).rejects.toBeInstanceOf(BridgeDropError);
  });
});
