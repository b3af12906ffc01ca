import { describe, it, expect, afterEach } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { constants, inflateRawSync } from 'node:zlib';
import type { DeflateConfig } from '../../src/shared/config.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { encodeFrame } from '../../src/shared/frame-encoder.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { SlabPool } from '../../src/shared/slab-pool.ts';
import type { PeerPublish, WorkerMessage } from '../../src/shared/thread-messages.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';
import { PeerMesh } from '../../src/worker/peer-mesh.ts';
import { TopicRegistry, primaryBridgeLink } from '../../src/worker/topic-registry.ts';
import type { BridgeLink } from '../../src/worker/topic-registry.ts';
import { FakeConnection, FakeMesh, silentLogger, until } from '../support/worker-fakes.ts';
import type { App, Recovery } from '../../src/shared/app.ts';
import { kSerial } from '../../src/worker/connection.ts';

/** A BridgeLink that records what the registry tells it. */
class FakeBridge implements BridgeLink {
  readonly interests: { topics: readonly string[]; subscribed: boolean }[] = [];
  readonly publishes: { topic: string; payload: Buffer; binary: boolean }[] = [];
  readonly requests: { kind: 'publish' | 'recover'; topic: string; except?: number; since?: string; ticket: number }[] = [];
  readonly durable: boolean;
  constructor(durable = false) {
    this.durable = durable;
  }
  interest(topics: readonly string[], subscribed: boolean): void {
    this.interests.push({ topics: [...topics], subscribed });
  }
  publish(topic: string, payload: Buffer, binary: boolean, except: number, ticket: number): void {
    this.publishes.push({ topic, payload: Buffer.from(payload), binary });
    this.requests.push({ kind: 'publish', topic, except, ticket });
  }
  recover(topic: string, since: string, ticket: number): void {
    this.requests.push({ kind: 'recover', topic, since, ticket });
  }
}

const deflateConfig = (mode: 'shared' | 'dedicated', threshold = 64): DeflateConfig =>
  resolveConfig({ deflate: { mode, threshold } }, 1).deflate!;

function registry(options: { deflate?: DeflateConfig | null; bridge?: BridgeLink | null } = {}) {
  const mesh = new FakeMesh();
  const counters = new WorkerCounters(1).slot(0);
  const topics = new TopicRegistry(mesh.asMesh, options.deflate ?? null, counters, options.bridge ?? null);
  return { mesh, counters, topics };
}

/** The payload of an unmasked frame. */
function framePayload(frame: Buffer): Buffer {
  const length = frame[1]! & 0x7f;
  return length < 126 ? frame.subarray(2) : length === 126 ? frame.subarray(4) : frame.subarray(10);
}

/** Inflates a server frame's permessage-deflate payload (RFC 7692 §7.2.2: the trailer goes back on). */
const inflateFramePayload = (frame: Buffer): Buffer => inflateRawSync(Buffer.concat([framePayload(frame), Buffer.from([0x00, 0x00, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });

const publishMessage = (topic: string, plainLength: number, compressedLength: number): PeerPublish => ({
  type: 'publish',
  topic,
  priority: 'low',
  plainLength,
  compressedLength,
  bytes: null,
  handle: 7,
});

describe('TopicRegistry subscriptions', () => {
  it('attaches itself to the mesh', () => {
    const { mesh, topics } = registry();
    expect(mesh.attached).toBe(topics);
  });

  it('announces a topic to the mesh and the bridge on its first subscriber and withdraws it after its last', () => {
    const bridge = new FakeBridge();
    const { mesh, topics } = registry({ bridge });
    const a = new FakeConnection().asConnection;
    const b = new FakeConnection().asConnection;

    topics.subscribe(a, 'news');
    topics.subscribe(b, 'news');
    topics.subscribe(a, 'news'); // already subscribed: no change
    expect(topics.subscriberCount('news')).toBe(2);
    expect(topics.localTopics).toEqual(['news']);
    expect(mesh.calls).toEqual([{ kind: 'announce', topics: ['news'], subscribed: true, only: undefined }]);
    expect(bridge.interests).toEqual([{ topics: ['news'], subscribed: true }]);

    topics.unsubscribe(a, 'news');
    topics.unsubscribe(a, 'news'); // no longer subscribed: nothing
    topics.unsubscribe(a, 'sports'); // never subscribed: nothing
    expect(topics.subscriberCount('news')).toBe(1);
    expect(mesh.calls).toHaveLength(1);
    expect(bridge.interests).toHaveLength(1);

    topics.unsubscribe(b, 'news');
    expect(topics.subscriberCount('news')).toBe(0);
    expect(topics.localTopics).toEqual([]);
    expect(mesh.calls.at(-1)).toEqual({ kind: 'announce', topics: ['news'], subscribed: false, only: undefined });
    expect(bridge.interests.at(-1)).toEqual({ topics: ['news'], subscribed: false });

    topics.subscribe(b, 'news');
    expect(mesh.ofKind('announce').map((c) => c.subscribed)).toEqual([true, false, true]);
  });

  it('keeps topics apart', () => {
    const { topics } = registry();
    const a = new FakeConnection().asConnection;
    topics.subscribe(a, 'x');
    topics.subscribe(a, 'y');
    topics.unsubscribe(a, 'x');
    expect(topics.localTopics).toEqual(['y']);
    expect(topics.subscriberCount('x')).toBe(0);
    expect(topics.subscriberCount('y')).toBe(1);
  });
});

describe('TopicRegistry.publish', () => {
  it('frames once and hands the same buffer to every local subscriber except the sender', () => {
    const { mesh, counters, topics } = registry();
    const [sender, a, b] = [new FakeConnection(), new FakeConnection(), new FakeConnection()];
    for (const c of [sender, a, b]) topics.subscribe(c.asConnection, 'room');
    mesh.calls.length = 0;

    topics.publish('room', 'hello', { priority: 'high' }, sender.asConnection);

    expect(sender.sends).toEqual([]);
    expect(a.sends).toHaveLength(1);
    expect(b.sends).toHaveLength(1);
    expect(a.sends[0]!.plain).toBe(b.sends[0]!.plain);
    expect(a.sends[0]!.plain.equals(encodeFrame(Opcode.Text, Buffer.from('hello')))).toBe(true);
    expect(a.sends[0]).toMatchObject({ compressed: null, priority: 'high', release: null });
    expect(counters[Counter.PublishesOut]).toBe(1);
    // Nobody elsewhere asked for it.
    expect(mesh.calls).toEqual([]);
  });

  it('sends buffers as binary and strings as text unless told otherwise, at normal priority by default', () => {
    const { topics } = registry();
    const c = new FakeConnection();
    topics.subscribe(c.asConnection, 't');
    topics.publish('t', new Uint8Array([1, 2, 3]), undefined, null);
    topics.publish('t', 'txt', { binary: true }, null);
    topics.publish('t', Buffer.from('bin'), { binary: false }, null);
    expect(c.sends.map((s) => s.plain)).toEqual([
      encodeFrame(Opcode.Binary, Buffer.from([1, 2, 3])),
      encodeFrame(Opcode.Binary, Buffer.from('txt')),
      encodeFrame(Opcode.Text, Buffer.from('bin')),
    ]);
    expect(c.sends.every((s) => s.priority === 'normal')).toBe(true);
  });

  it('does nothing, and counts nothing, when only the sender or nobody subscribes', () => {
    const { mesh, counters, topics } = registry();
    const sender = new FakeConnection();
    topics.subscribe(sender.asConnection, 'solo');
    mesh.calls.length = 0;
    topics.publish('solo', 'x', undefined, sender.asConnection);
    topics.publish('empty', 'x', undefined, null);
    expect(sender.sends).toEqual([]);
    expect(mesh.calls).toEqual([]);
    expect(counters[Counter.PublishesOut]).toBe(0);
  });

  it.each(['shared', 'dedicated'] as const)('compresses once per publish in %s mode and counts the deflate bytes once', (mode) => {
    const { counters, topics } = registry({ deflate: deflateConfig(mode, 64) });
    const subscribers = [new FakeConnection(), new FakeConnection(), new FakeConnection()];
    for (const c of subscribers) topics.subscribe(c.asConnection, 'feed');
    const payload = Buffer.from('abcdefgh'.repeat(100));

    topics.publish('feed', payload, undefined, null);

    const compressed = subscribers[0]!.sends[0]!.compressed!;
    expect(compressed).not.toBeNull();
    for (const c of subscribers) expect(c.sends[0]!.compressed).toBe(compressed);
    // FIN, RSV1 and the opcode of the original message.
    expect(compressed[0]).toBe(0x80 | 0x40 | Opcode.Binary);
    expect(inflateFramePayload(compressed).equals(payload)).toBe(true);
    expect(counters[Counter.DeflateBytesIn]).toBe(payload.length);
    expect(counters[Counter.DeflateBytesOut]).toBe(framePayload(compressed).length);
    expect(counters[Counter.DeflateBytesOut]).toBeLessThan(payload.length);
    // The plain frame still goes along for subscribers without compression.
    expect(subscribers[0]!.sends[0]!.plain.equals(encodeFrame(Opcode.Binary, payload))).toBe(true);
  });

  it('compresses once per window its subscribers negotiated, only when one of them asks', () => {
    const { counters, topics } = registry({ deflate: deflateConfig('dedicated', 0) });
    const [a, b, narrow] = [new FakeConnection(), new FakeConnection(), new FakeConnection(10)];
    for (const c of [a, b, narrow]) topics.subscribe(c.asConnection, 't');
    const payload = Buffer.from('window '.repeat(200));
    topics.publish('t', payload, undefined, null);
    expect(a.sends[0]!.compressed).toBe(b.sends[0]!.compressed);
    expect(narrow.sends[0]!.compressed).not.toEqual(a.sends[0]!.compressed);
    expect(inflateFramePayload(narrow.sends[0]!.compressed!).equals(payload)).toBe(true);
    expect(counters[Counter.DeflateBytesIn]).toBe(2 * payload.length);
  });

  it('does not compress below the threshold or when the sender says no', () => {
    const shared = registry({ deflate: deflateConfig('shared', 64) });
    const c = new FakeConnection();
    shared.topics.subscribe(c.asConnection, 't');
    shared.topics.publish('t', Buffer.alloc(63, 1), undefined, null);
    shared.topics.publish('t', Buffer.alloc(500, 1), { compress: false }, null);
    expect(c.sends.map((s) => s.compressed)).toEqual([null, null]);
    expect(shared.counters[Counter.DeflateBytesIn]).toBe(0);
    shared.topics.publish('t', Buffer.alloc(64, 1), undefined, null);
    expect(c.sends[2]!.compressed).not.toBeNull();
  });

  it('sends to a remote worker only while it has announced interest, with the frames built here', () => {
    const { mesh, counters, topics } = registry({ deflate: deflateConfig('shared', 0) });
    const local = new FakeConnection();
    topics.subscribe(local.asConnection, 't');
    mesh.calls.length = 0;

    topics.setRemoteInterest(2, ['t', 'u'], true);
    topics.setRemoteInterest(3, ['t'], true);
    topics.publish('t', 'one', { priority: 'low' }, null);
    const [first] = mesh.ofKind('publish');
    expect(first).toMatchObject({ workers: [2, 3], topic: 't', priority: 'low' });
    expect(first!.plain).toBe(local.sends[0]!.plain);
    expect(first!.compressed).toBe(local.sends[0]!.compressed);

    // Only remote subscribers: still framed and sent there.
    topics.publish('u', 'two', undefined, null);
    expect(mesh.ofKind('publish')[1]).toMatchObject({ workers: [2], topic: 'u' });

    topics.setRemoteInterest(2, ['t'], false);
    topics.setRemoteInterest(4, ['t'], false); // never interested: no effect
    topics.publish('t', 'three', undefined, null);
    expect(mesh.ofKind('publish')[2]).toMatchObject({ workers: [3] });

    topics.forgetWorker(3);
    topics.forgetWorker(2);
    topics.publish('t', 'four', undefined, null);
    topics.publish('u', 'five', undefined, null);
    expect(mesh.ofKind('publish')).toHaveLength(3);
    expect(local.sends).toHaveLength(3);
    expect(counters[Counter.PublishesOut]).toBe(4);
  });
});

describe('TopicRegistry.deliver', () => {
  it('writes the plain and compressed frames of a copied publish to every local subscriber', () => {
    const { counters, topics } = registry({ deflate: deflateConfig('shared', 0) });
    const a = new FakeConnection();
    const b = new FakeConnection();
    topics.subscribe(a.asConnection, 't');
    topics.subscribe(b.asConnection, 't');
    const plain = encodeFrame(Opcode.Text, Buffer.from('plain'));
    const compressed = Buffer.from([0xc1, 0x02, 0xaa, 0xbb]);

    topics.deliver(publishMessage('t', plain.length, compressed.length), Buffer.concat([plain, compressed]), null);
    topics.deliver(publishMessage('t', plain.length, 0), plain, null);

    for (const c of [a, b]) {
      expect(c.sends).toHaveLength(2);
      expect(c.sends[0]!.plain.equals(plain)).toBe(true);
      expect(c.sends[0]!.compressed!.equals(compressed)).toBe(true);
      expect(c.sends[0]).toMatchObject({ priority: 'low', release: null });
      expect(c.sends[1]!.compressed).toBeNull();
    }
    expect(counters[Counter.PublishesIn]).toBe(2);
    expect(counters[Counter.DeflateBytesIn]).toBe(0);
  });

  it('compresses here for a subscriber whose window is not the one the publisher used', () => {
    const { counters, topics } = registry({ deflate: deflateConfig('dedicated', 0) });
    const narrow = new FakeConnection(9);
    topics.subscribe(narrow.asConnection, 't');
    const payload = Buffer.from('narrow window '.repeat(50));
    const plain = encodeFrame(Opcode.Text, payload);
    const compressed = encodeFrame(Opcode.Text, Buffer.from([0x01, 0x02]), { rsv1: true });
    topics.deliver(publishMessage('t', plain.length, compressed.length), Buffer.concat([plain, compressed]), null);
    expect(inflateFramePayload(narrow.sends[0]!.compressed!).equals(payload)).toBe(true);
    expect(counters[Counter.DeflateBytesIn]).toBe(payload.length);
  });

  it('releases pooled frames at once when no local connection subscribes', () => {
    const { counters, topics } = registry();
    let releases = 0;
    topics.deliver(publishMessage('nobody', 4, 0), Buffer.alloc(4), () => releases++);
    expect(releases).toBe(1);
    expect(counters[Counter.PublishesIn]).toBe(1);
  });

  it('runs a pooled release exactly once, after every connection released, however they release', () => {
    const { topics } = registry();
    const early = new FakeConnection();
    early.releaseAtOnce = true;
    const late = [new FakeConnection(), new FakeConnection()];
    for (const c of [early, ...late]) topics.subscribe(c.asConnection, 't');
    let releases = 0;

    topics.deliver(publishMessage('t', 4, 0), Buffer.alloc(4), () => releases++);

    // Each connection got its own release; the one that released at once does not free the pages.
    expect(early.sends[0]!.release).not.toBeNull();
    expect(releases).toBe(0);
    late[0]!.sends[0]!.release!();
    // A connection releasing twice counts once.
    late[0]!.sends[0]!.release!();
    early.sends[0]!.release!();
    expect(releases).toBe(0);
    late[1]!.sends[0]!.release!();
    expect(releases).toBe(1);
    late[1]!.sends[0]!.release!();
    expect(releases).toBe(1);
  });

  it('runs a pooled release once when every connection releases while being handed the frames', () => {
    const { topics } = registry();
    const connections = [new FakeConnection(), new FakeConnection()];
    for (const c of connections) {
      c.releaseAtOnce = true;
      topics.subscribe(c.asConnection, 't');
    }
    let releases = 0;
    topics.deliver(publishMessage('t', 4, 0), Buffer.alloc(4), () => releases++);
    expect(releases).toBe(1);
  });
});

describe('TopicRegistry and the bridge', () => {
  it('hands a local publish to the bridge even with no subscriber here', () => {
    const bridge = new FakeBridge();
    const { mesh, counters, topics } = registry({ bridge });
    topics.publish('far', Buffer.from([9, 8]), undefined, null);
    topics.publish('far', 'text', undefined, null);
    expect(bridge.publishes).toEqual([
      { topic: 'far', payload: Buffer.from([9, 8]), binary: true },
      { topic: 'far', payload: Buffer.from('text'), binary: false },
    ]);
    expect(mesh.calls).toEqual([]);
    expect(counters[Counter.PublishesOut]).toBe(2);
  });

  it('does not send a publish that came from the bridge back to it', () => {
    const bridge = new FakeBridge();
    const { counters, topics } = registry({ bridge });
    const c = new FakeConnection();
    topics.subscribe(c.asConnection, 't');
    topics.publish('t', 'from afar', undefined, null, true);
    topics.publish('unheard', 'from afar', undefined, null, true);
    expect(bridge.publishes).toEqual([]);
    expect(c.sends).toHaveLength(1);
    expect(counters[Counter.PublishesOut]).toBe(1);
  });
});

describe('TopicRegistry with a durable bridge', () => {
  /** A registry on a durable bridge, with an app that stamps ids and records recoveries. */
  function durable(stamp: ((topic: string, id: string, data: Buffer) => string) | null = (_t, id, data) => `${id}:${data.toString()}`) {
    const bridge = new FakeBridge(true);
    const { mesh, counters, topics } = registry({ bridge });
    const recoveries: Recovery[] = [];
    const events: string[] = [];
    const logged: string[] = [];
    const logger = silentLogger();
    logger.error = ((_fields: object, message: string) => void logged.push(message)) as typeof logger.error;
    const app: App<unknown> = {
      ...(stamp === null ? {} : { stamp }),
      recovery: (_ws, recovery) => {
        recoveries.push(recovery);
        events.push(`recovery ${recovery.replayed}`);
      },
    };
    topics.useHooks({ appOf: () => app, logger });
    return { bridge, mesh, counters, topics, recoveries, events, logged };
  }
  const text = (frame: Buffer): string => framePayload(frame).toString();

  it('sends a publish only to the primary, naming the connection to leave out; nothing is delivered here yet', () => {
    const { bridge, mesh, counters, topics } = durable();
    const [sender, other] = [new FakeConnection(), new FakeConnection()];
    for (const c of [sender, other]) topics.subscribe(c.asConnection, 'room');
    mesh.calls.length = 0;
    expect(topics.publish('room', 'hi', undefined, sender.asConnection)).toBeUndefined();
    topics.publish('room', Buffer.from([1]), undefined, null);
    expect(bridge.requests).toEqual([
      { kind: 'publish', topic: 'room', except: sender[kSerial], ticket: -1 },
      { kind: 'publish', topic: 'room', except: -1, ticket: -1 },
    ]);
    expect(bridge.publishes.map((p) => p.binary)).toEqual([false, true]);
    expect(sender.sends).toEqual([]);
    expect(other.sends).toEqual([]);
    expect(mesh.calls).toEqual([]);
    expect(counters[Counter.PublishesOut]).toBe(2);
  });

  it('resolves `withId` to the id the primary answers, or rejects with its reason', async () => {
    const { bridge, topics } = durable();
    const first = topics.publish('t', 'a', { withId: true }, null)!;
    const second = topics.publish('t', 'b', { withId: true }, null)!;
    const [t1, t2] = bridge.requests.map((r) => r.ticket);
    expect(t1).not.toBe(t2);
    topics.published(t2!, null, 'dropped: the outage buffer is full');
    topics.published(t1!, '17-0', null);
    topics.published(t1!, '18-0', null); // answered twice: ignored
    await expect(first).resolves.toBe('17-0');
    await expect(second).rejects.toThrow('outage buffer');
  });

  it('frames each entry once, stamped with its id by the app, for every subscriber but the one left out', () => {
    const { counters, topics } = durable();
    const [a, b, c] = [new FakeConnection(), new FakeConnection(), new FakeConnection()];
    for (const conn of [a, b, c]) topics.subscribe(conn.asConnection, 'room');
    topics.deliverEntry('room', '5-1', Buffer.from('hello'), false, b[kSerial]);
    topics.deliverEntry('elsewhere', '5-2', Buffer.from('nobody'), false, -1);
    expect(text(a.sends[0]!.plain)).toBe('5-1:hello');
    expect(a.sends[0]!.plain).toBe(c.sends[0]!.plain);
    expect(b.sends).toEqual([]);
    expect(counters[Counter.PublishesIn]).toBe(1);
  });

  it('sends entries as published without a stamp, and when the stamp throws (logged)', () => {
    const plain = durable(null);
    const a = new FakeConnection();
    plain.topics.subscribe(a.asConnection, 't');
    plain.topics.deliverEntry('t', '1-0', Buffer.from('raw'), false, -1);
    expect(text(a.sends[0]!.plain)).toBe('raw');

    const failing = durable(() => {
      throw new Error('bad stamp');
    });
    const b = new FakeConnection();
    failing.topics.subscribe(b.asConnection, 't');
    failing.topics.deliverEntry('t', '1-0', Buffer.from('raw'), false, -1);
    expect(text(b.sends[0]!.plain)).toBe('raw');
    expect(failing.logged).toEqual(['app stamp handler threw; sending the message as published']);
  });

  it('stamps for each subscriber with its own app (routes serving different apps), framing once per app', () => {
    const { bridge, topics } = durable();
    const [a, b, c, d] = [new FakeConnection(), new FakeConnection(), new FakeConnection(), new FakeConnection()];
    const chat: App<unknown> = { stamp: (_t, id, data) => `chat ${id} ${data.toString()}` };
    const feed: App<unknown> = { stamp: (_t, id, data) => JSON.stringify({ id, data: data.toString() }) };
    const recoveries: string[] = [];
    const bare: App<unknown> = { recovery: (_ws, r) => void recoveries.push(`bare ${r.topic}`) };
    const apps = new Map<unknown, App<unknown>>([
      [a.asConnection, chat],
      [b.asConnection, feed],
      [c.asConnection, chat],
      [d.asConnection, bare],
    ]);
    topics.useHooks({ appOf: (connection) => apps.get(connection)!, logger: silentLogger() });
    for (const conn of [a, b, c, d]) topics.subscribe(conn.asConnection, 'room');
    topics.deliverEntry('room', '7-0', Buffer.from('hi'), false, -1);
    expect(text(a.sends[0]!.plain)).toBe('chat 7-0 hi');
    expect(text(b.sends[0]!.plain)).toBe('{"id":"7-0","data":"hi"}');
    expect(c.sends[0]!.plain).toBe(a.sends[0]!.plain);
    expect(text(d.sends[0]!.plain)).toBe('hi');
    // A recovery is told to the recovering connection's app.
    const e = new FakeConnection();
    apps.set(e.asConnection, bare);
    topics.subscribe(e.asConnection, 'room', '1-0');
    topics.replayed(bridge.requests.find((r) => r.kind === 'recover')!.ticket, [], true);
    expect(recoveries).toEqual(['bare room']);
  });

  it('recovers a subscriber: asks after the interest, holds live entries, tells the app, replays, then goes live without a duplicate', () => {
    const { bridge, topics, recoveries, events } = durable();
    const old = new FakeConnection();
    topics.subscribe(old.asConnection, 'room');
    const c = new FakeConnection();
    topics.subscribe(c.asConnection, 'room', '1-0');
    const recover = bridge.requests.find((r) => r.kind === 'recover')!;
    expect(recover).toMatchObject({ topic: 'room', since: '1-0' });
    // Live entries while the replay is on its way: the old subscriber gets them, the new one waits.
    topics.deliverEntry('room', '3-0', Buffer.from('three'), false, -1);
    topics.deliverEntry('room', '4-0', Buffer.from('four'), false, -1);
    expect(old.sends.map((s) => text(s.plain))).toEqual(['3-0:three', '4-0:four']);
    expect(c.sends).toEqual([]);
    const entry = (id: string, data: string) => ({ id, data: Buffer.from(data), binary: false });
    topics.replayed(recover.ticket, [entry('2-0', 'two'), entry('3-0', 'three')], true);
    expect(recoveries).toEqual([{ topic: 'room', since: '1-0', replayed: 2, complete: true }]);
    expect(c.direct.map((d) => d.data.toString())).toEqual(['2-0:two', '3-0:three']);
    expect(c.sends.map((s) => text(s.plain))).toEqual(['4-0:four']);
    topics.deliverEntry('room', '5-0', Buffer.from('five'), false, -1);
    expect(c.sends.map((s) => text(s.plain))).toEqual(['4-0:four', '5-0:five']);
    expect(events).toEqual(['recovery 2']);
  });

  it('refuses a `since` that is not an id, before subscribing', () => {
    const { topics } = durable();
    const c = new FakeConnection();
    expect(() => topics.subscribe(c.asConnection, 'room', 'yesterday')).toThrow(RangeError);
    expect(topics.subscriberCount('room')).toBe(0);
  });

  it('without a durable bridge: `withId` rejects, and a recovery is reported incomplete after subscribe returns', async () => {
    const { topics } = registry({ bridge: new FakeBridge(false) });
    const recoveries: Recovery[] = [];
    const app: App<unknown> = { recovery: (_ws, r) => void recoveries.push(r) };
    topics.useHooks({ appOf: () => app, logger: silentLogger() });
    await expect(topics.publish('t', 'x', { withId: true }, null)).rejects.toThrow('message ids need a durable bridge');
    const c = new FakeConnection();
    topics.subscribe(c.asConnection, 't', '1-0');
    expect(recoveries).toEqual([]);
    await Promise.resolve();
    expect(recoveries).toEqual([{ topic: 't', since: '1-0', replayed: 0, complete: false }]);
    expect(topics.subscriberCount('t')).toBe(1);
  });
});

describe('primaryBridgeLink', () => {
  it('posts interest and publish messages, the payload as an exact copy', () => {
    const posted: WorkerMessage[] = [];
    const link = primaryBridgeLink((message) => posted.push(message), false);
    link.interest(['a', 'b'], true);
    link.interest(['a'], false);

    const backing = Buffer.from('xxpayloadyy');
    const payload = backing.subarray(2, 9);
    link.publish('t', payload, false, -1, -1);
    backing.fill(0);

    expect(posted.slice(0, 2)).toEqual([
      { type: 'interest', topics: ['a', 'b'], subscribed: true },
      { type: 'interest', topics: ['a'], subscribed: false },
    ]);
    const publish = posted[2]!;
    expect(publish).toMatchObject({ type: 'bridge-publish', topic: 't', binary: false });
    const data = (publish as Extract<WorkerMessage, { type: 'bridge-publish' }>).data;
    // Its own buffer, exactly as long as the payload: posting a view would clone all of `backing`.
    expect(data.byteOffset).toBe(0);
    expect(data.buffer.byteLength).toBe(7);
    expect(Buffer.from(data).toString()).toBe('payload');
  });
});

describe('TopicRegistry across a real PeerMesh', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  it('publishes to the other worker once it announced interest, through the pool for large frames', async () => {
    const pool = SlabPool.create({ pageSize: 256, pageCount: 16, maxWorkers: 4 });
    pool.markAlive(1, 1);
    pool.markAlive(2, 1);
    const make = (worker: number) => {
      const mesh = new PeerMesh(worker, 1, SlabPool.attach(pool.buffer, { worker }), 512, silentLogger());
      const counters = new WorkerCounters(3).slot(worker);
      closers.push(() => mesh.close());
      return { mesh, counters, topics: new TopicRegistry(mesh, null, counters, null) };
    };
    const one = make(1);
    const two = make(2);
    const { port1, port2 } = new MessageChannel();
    one.mesh.add(2, 1, port1);
    two.mesh.add(1, 1, port2);

    const subscriber = new FakeConnection();
    // Not announced yet: nothing crosses, nothing counts.
    one.topics.publish('t', 'early', undefined, null);
    expect(one.counters[Counter.PublishesOut]).toBe(0);
    two.topics.subscribe(subscriber.asConnection, 't');
    // Worker 1 publishes (and counts) only once it learned of worker 2's subscriber.
    await until(() => {
      one.topics.publish('t', 'hello', undefined, null);
      return one.counters[Counter.PublishesOut]! > 0;
    }, 'interest to reach worker 1');
    await until(() => subscriber.sends.length > 0, 'the publish to reach worker 2');
    expect(subscriber.sends[0]!.plain.equals(encodeFrame(Opcode.Text, Buffer.from('hello')))).toBe(true);
    expect(subscriber.sends[0]!.release).toBeNull();

    subscriber.releaseAtOnce = false;
    const large = Buffer.alloc(1000, 0x5a);
    one.topics.publish('t', large, undefined, null);
    await until(() => subscriber.sends.length > 1, 'the pooled publish');
    const pooled = subscriber.sends[1]!;
    expect(pooled.plain.equals(encodeFrame(Opcode.Binary, large))).toBe(true);
    expect(pool.stats().allocations).toBe(1);
    // The subscriber wrote it: the pages go back to the pool.
    pooled.release!();
    expect(pool.stats()).toEqual({ pagesTotal: 16, pagesFree: 16, allocations: 0 });
    expect(two.counters[Counter.PublishesIn]).toBe(2);
  });
});
