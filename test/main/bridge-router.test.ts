import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BridgeRouter } from '../../src/main/bridge-router.ts';
import type { PrimaryMessage } from '../../src/shared/thread-messages.ts';
import type { BridgeLog, BridgeStats, DurableBridgeEvents, DurableTopicBridge, Except, Replay, TopicBridge } from '../../src/main/topic-bridge.ts';

const logger = pino({ level: 'silent' });

/** A TopicBridge that records what the router asks of it and lets the test play the broker. */
class FakeBridge implements TopicBridge {
  readonly calls: string[] = [];
  readonly published: { topic: string; payload: Uint8Array; binary: boolean }[] = [];
  deliver: ((topic: string, payload: Buffer, binary: boolean) => void) | null = null;
  log: BridgeLog | null = null;
  closed = false;
  readonly fakeStats: BridgeStats = { connected: true, published: 1, received: 2, dropped: 3, outages: 4, topics: 5 };

  async start(deliver: (topic: string, payload: Buffer, binary: boolean) => void, log: BridgeLog): Promise<void> {
    this.deliver = deliver;
    this.log = log;
  }
  subscribe(topic: string): void {
    this.calls.push(`subscribe ${topic}`);
  }
  unsubscribe(topic: string): void {
    this.calls.push(`unsubscribe ${topic}`);
  }
  publish(topic: string, payload: Uint8Array, binary: boolean): void {
    this.published.push({ topic, payload, binary });
  }
  stats(): BridgeStats {
    return this.fakeStats;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

type Entered = { message: PrimaryMessage; preferred: number };

async function started(workers = 4): Promise<{ bridge: FakeBridge; router: BridgeRouter; entered: Entered[] }> {
  const bridge = new FakeBridge();
  const entered: Entered[] = [];
  const router = new BridgeRouter(
    bridge,
    {
      enter: (message, preferred) => {
        entered.push({ message, preferred });
        return true;
      },
      post: () => {
        throw new Error('a plain bridge posts to no single worker');
      },
    },
    workers,
  );
  await router.start(logger);
  return { bridge, router, entered };
}

describe('BridgeRouter', () => {
  it('subscribes on the broker at the first interested worker and unsubscribes when the last one leaves', async () => {
    const { bridge, router } = await started();
    router.interest(0, ['news'], true);
    router.interest(2, ['news'], true);
    router.interest(2, ['news'], true); // the same worker again
    expect(bridge.calls).toEqual(['subscribe news']);
    router.interest(0, ['news'], false);
    expect(bridge.calls).toEqual(['subscribe news']);
    router.interest(2, ['news'], false);
    expect(bridge.calls).toEqual(['subscribe news', 'unsubscribe news']);
    // Interested again: subscribed again.
    router.interest(1, ['news'], true);
    expect(bridge.calls).toEqual(['subscribe news', 'unsubscribe news', 'subscribe news']);
  });

  it('handles several topics in one message, each on its own', async () => {
    const { bridge, router } = await started();
    router.interest(0, ['a', 'b'], true);
    router.interest(1, ['b', 'c'], true);
    expect(bridge.calls).toEqual(['subscribe a', 'subscribe b', 'subscribe c']);
    router.interest(0, ['a', 'b'], false);
    expect(bridge.calls.slice(3)).toEqual(['unsubscribe a']);
  });

  it('ignores a leave from a worker that never came, or a topic nobody wants', async () => {
    const { bridge, router } = await started();
    router.interest(0, ['news'], false);
    router.interest(1, ['news'], true);
    router.interest(3, ['news'], false);
    router.interest(3, ['news'], false);
    expect(bridge.calls).toEqual(['subscribe news']);
  });

  it('drops every interest of a worker that is gone, unsubscribing only where it was the last', async () => {
    const { bridge, router, entered } = await started();
    router.interest(0, ['mine', 'shared'], true);
    router.interest(1, ['shared', 'theirs'], true);
    bridge.calls.length = 0;
    router.workerGone(0);
    expect(bridge.calls).toEqual(['unsubscribe mine']);
    // Its topics no longer reach the mesh; the others still do.
    bridge.deliver!('mine', Buffer.from('x'), false);
    bridge.deliver!('shared', Buffer.from('y'), false);
    expect(entered.map((e) => (e.message.type === 'publish' ? e.message.topic : e.message.type))).toEqual(['shared']);
    router.workerGone(1);
    expect(bridge.calls.sort()).toEqual(['unsubscribe mine', 'unsubscribe shared', 'unsubscribe theirs']);
    router.workerGone(1);
    expect(bridge.calls).toHaveLength(3);
  });

  it('forwards this server’s publishes, stats and close to the bridge', async () => {
    const { bridge, router } = await started();
    const data = new Uint8Array([1, 2, 3]);
    router.publish(0, { type: 'bridge-publish', topic: 'news', data, binary: true, except: -1, ticket: -1 });
    router.publish(1, { type: 'bridge-publish', topic: 'text', data: new Uint8Array([104, 105]), binary: false, except: -1, ticket: -1 });
    expect(bridge.published).toEqual([
      { topic: 'news', payload: data, binary: true },
      { topic: 'text', payload: new Uint8Array([104, 105]), binary: false },
    ]);
    // Publishing needs no subscriber here: the other servers may have some.
    expect(bridge.calls).toEqual([]);
    expect(router.stats()).toBe(bridge.fakeStats);
    await router.close();
    expect(bridge.closed).toBe(true);
  });

  it('hands the bridge a deliver function and the logger on start', async () => {
    const { bridge } = await started();
    expect(typeof bridge.deliver).toBe('function');
    expect(bridge.log).toBe(logger);
  });

  it('feeds a publish from the broker into the mesh as an exact copy marked fromBridge', async () => {
    const { bridge, router, entered } = await started();
    router.interest(1, ['news'], true);
    // The broker hands a view of its read buffer.
    const readBuffer = Buffer.from('xxxxhello worldyyyy');
    const payload = readBuffer.subarray(4, 15);
    bridge.deliver!('news', payload, false);
    expect(entered).toHaveLength(1);
    const { message } = entered[0]!;
    expect(message.type).toBe('publish');
    if (message.type !== 'publish') return;
    expect(message.topic).toBe('news');
    expect(message.binary).toBe(false);
    expect(message.fromBridge).toBe(true);
    expect(Buffer.from(message.data).toString()).toBe('hello world');
    // A copy of just those bytes: not a view of the read buffer, which the broker client reuses.
    expect(message.data.buffer).not.toBe(readBuffer.buffer);
    expect(message.data.byteOffset).toBe(0);
    expect(message.data.buffer.byteLength).toBe(11);
    readBuffer.fill(0);
    expect(Buffer.from(message.data).toString()).toBe('hello world');

    bridge.deliver!('news', Buffer.from([0, 255]), true);
    expect(entered[1]!.message).toMatchObject({ type: 'publish', topic: 'news', binary: true, fromBridge: true });
  });

  it('ignores a publish from the broker for a topic no worker wants', async () => {
    const { bridge, router, entered } = await started();
    bridge.deliver!('news', Buffer.from('early'), false);
    router.interest(0, ['news'], true);
    router.interest(0, ['news'], false);
    bridge.deliver!('news', Buffer.from('late'), false);
    bridge.deliver!('other', Buffer.from('never'), false);
    expect(entered).toEqual([]);
  });

  it('enters the mesh through the same worker for a topic every time, whichever worker subscribed', async () => {
    const { bridge, router, entered } = await started(4);
    const topics = Array.from({ length: 40 }, (_, i) => `topic-${i}`);
    router.interest(3, topics, true);
    for (let round = 0; round < 3; round++) for (const topic of topics) bridge.deliver!(topic, Buffer.from('m'), false);
    const entry = new Map<string, Set<number>>();
    for (const { message, preferred } of entered) {
      if (message.type !== 'publish') continue;
      expect(preferred).toBeGreaterThanOrEqual(0);
      expect(preferred).toBeLessThan(4);
      expect(Number.isInteger(preferred)).toBe(true);
      const set = entry.get(message.topic) ?? new Set();
      set.add(preferred);
      entry.set(message.topic, set);
    }
    expect(entry.size).toBe(40);
    for (const set of entry.values()) expect(set.size).toBe(1);
    // The entry depends on the topic, not on who subscribed: topics spread over the workers.
    const used = new Set([...entry.values()].map((set) => [...set][0]));
    expect(used.size).toBeGreaterThan(1);
    // Another router (a restarted server) picks the same entry for the same topic.
    const other = await started(4);
    other.router.interest(0, topics, true);
    for (const topic of topics) other.bridge.deliver!(topic, Buffer.from('m'), false);
    for (const { message, preferred } of other.entered) {
      if (message.type === 'publish') expect([...entry.get(message.topic)!]).toEqual([preferred]);
    }
  });
});

/** A DurableTopicBridge the test plays the broker for. */
class FakeDurableBridge implements DurableTopicBridge {
  readonly durable = true;
  readonly calls: string[] = [];
  readonly appended: { topic: string; payload: Uint8Array; binary: boolean; except: Except | null; settle: { resolve: (id: string) => void; reject: (error: Error) => void } }[] = [];
  readonly replays: { topic: string; since: string; resolve: (replay: Replay) => void }[] = [];
  events: DurableBridgeEvents | null = null;

  async start(events: DurableBridgeEvents): Promise<void> {
    this.events = events;
  }
  subscribe(topic: string): void {
    this.calls.push(`subscribe ${topic}`);
  }
  unsubscribe(topic: string): void {
    this.calls.push(`unsubscribe ${topic}`);
  }
  append(topic: string, payload: Uint8Array, binary: boolean, except: Except | null): Promise<string> {
    return new Promise((resolve, reject) => this.appended.push({ topic, payload, binary, except, settle: { resolve, reject } }));
  }
  replay(topic: string, since: string): Promise<Replay> {
    return new Promise((resolve) => this.replays.push({ topic, since, resolve }));
  }
  stats(): BridgeStats {
    return { connected: true, published: 0, received: 0, dropped: 0, outages: 0, topics: 0 };
  }
  async close(): Promise<void> {}
}

describe('BridgeRouter with a durable bridge', () => {
  async function durable(workers = 3) {
    const bridge = new FakeDurableBridge();
    const posted: { worker: number; message: PrimaryMessage }[] = [];
    const router = new BridgeRouter(
      bridge,
      {
        enter: () => {
          throw new Error('a durable bridge does not enter through the mesh');
        },
        post: (worker, message) => posted.push({ worker, message }),
      },
      workers,
    );
    await router.start(logger);
    return { bridge, router, posted };
  }
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('sends each entry straight to every worker with subscribers, the connection left out only to its own worker', async () => {
    const { bridge, router, posted } = await durable();
    router.interest(0, ['room'], true);
    router.interest(2, ['room'], true);
    const readBuffer = Buffer.from('..hello..');
    bridge.events!.entry('room', { id: '7-0', payload: readBuffer.subarray(2, 7), binary: false, except: { worker: 2, serial: 41 } });
    bridge.events!.entry('nobody', { id: '7-1', payload: Buffer.from('x'), binary: false, except: null });
    readBuffer.fill(0);
    expect(posted.map((p) => [p.worker, p.message.type === 'entry' && p.message.except])).toEqual([
      [0, -1],
      [2, 41],
    ]);
    const message = posted[0]!.message as Extract<PrimaryMessage, { type: 'entry' }>;
    expect(message).toMatchObject({ topic: 'room', id: '7-0', binary: false });
    expect(Buffer.from(message.data).toString()).toBe('hello');
  });

  it('appends a worker’s publish with the connection it leaves out, and answers a ticket with the id or the reason', async () => {
    const { bridge, router, posted } = await durable();
    router.publish(1, { type: 'bridge-publish', topic: 't', data: new Uint8Array([1]), binary: true, except: 9, ticket: 4 });
    router.publish(2, { type: 'bridge-publish', topic: 't', data: new Uint8Array([2]), binary: true, except: -1, ticket: 5 });
    router.publish(2, { type: 'bridge-publish', topic: 't', data: new Uint8Array([3]), binary: true, except: -1, ticket: -1 });
    expect(bridge.appended.map((a) => a.except)).toEqual([{ worker: 1, serial: 9 }, null, null]);
    bridge.appended[0]!.settle.resolve('9-9');
    bridge.appended[1]!.settle.reject(new Error('dropped: the outage buffer is full'));
    bridge.appended[2]!.settle.resolve('9-10');
    await settle();
    expect(posted).toEqual([
      { worker: 1, message: { type: 'published', ticket: 4, id: '9-9', error: null } },
      { worker: 2, message: { type: 'published', ticket: 5, id: null, error: 'dropped: the outage buffer is full' } },
    ]);
  });

  it('answers a recovery with the replay, to the worker that asked', async () => {
    const { bridge, router, posted } = await durable();
    router.recover(2, { type: 'recover', topic: 'room', since: '1-0', ticket: 8 });
    expect(bridge.replays).toMatchObject([{ topic: 'room', since: '1-0' }]);
    bridge.replays[0]!.resolve({ entries: [{ id: '2-0', payload: Buffer.from('two'), binary: false, except: null }], complete: false });
    await settle();
    expect(posted).toHaveLength(1);
    expect(posted[0]!.worker).toBe(2);
    const replay = posted[0]!.message as Extract<PrimaryMessage, { type: 'replay' }>;
    expect(replay).toMatchObject({ type: 'replay', ticket: 8, complete: false });
    expect(replay.entries.map((e) => [e.id, Buffer.from(e.data).toString(), e.binary])).toEqual([['2-0', 'two', false]]);
  });

  it('tells every worker the bridge’s notices', async () => {
    const { bridge, posted } = await durable(3);
    bridge.events!.notice({ type: 'dropped', count: 2, topics: ['t'] });
    expect(posted.map((p) => p.worker)).toEqual([0, 1, 2]);
    expect(posted[0]!.message).toEqual({ type: 'bridge-notice', notice: { type: 'dropped', count: 2, topics: ['t'] } });
  });
});
