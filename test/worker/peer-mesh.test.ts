import { describe, it, expect, afterEach } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { SlabPool } from '../../src/shared/slab-pool.ts';
import { PeerMesh } from '../../src/worker/peer-mesh.ts';
import { RecordingTopics, silentLogger, until } from '../support/worker-fakes.ts';

const PAGE = 256;
const PAGES = 16;
const THRESHOLD = 300;

const meshes: PeerMesh[] = [];
afterEach(() => {
  for (const mesh of meshes.splice(0)) mesh.close();
});

/** A pool with workers 1 and 2 alive, and each worker's mesh and topics (not joined yet). */
function setup() {
  const pool = SlabPool.create({ pageSize: PAGE, pageCount: PAGES, maxWorkers: 4 });
  pool.markAlive(1, 1);
  pool.markAlive(2, 1);
  const side = (worker: number) => {
    const mesh = new PeerMesh(worker, 1, SlabPool.attach(pool.buffer, { worker }), THRESHOLD, silentLogger());
    const topics = new RecordingTopics();
    mesh.attach(topics);
    meshes.push(mesh);
    return { mesh, topics };
  };
  return { pool, one: side(1), two: side(2) };
}

/** Joins worker 1 and worker 2 (generation 1 each) with a MessageChannel. */
function join(one: PeerMesh, two: PeerMesh): void {
  const { port1, port2 } = new MessageChannel();
  one.add(2, 1, port1);
  two.add(1, 1, port2);
}

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
const FREE = { pagesTotal: PAGES, pagesFree: PAGES, allocations: 0 };

describe('PeerMesh', () => {
  it('carries interest changes to the other side', async () => {
    const { one, two } = setup();
    join(one.mesh, two.mesh);
    one.mesh.announce(['a', 'b'], true);
    one.mesh.announce([], true); // nothing to say: no message
    one.mesh.announce(['a'], false);
    await until(() => two.topics.interest.length >= 2, 'interest at worker 2');
    expect(two.topics.interest).toEqual([
      { worker: 1, topics: ['a', 'b'], subscribed: true },
      { worker: 1, topics: ['a'], subscribed: false },
    ]);
    expect(one.topics.interest).toEqual([]);
  });

  it('tells a peer that joins late the topics subscribed here', async () => {
    const { one, two } = setup();
    one.topics.localTopics = ['x', 'y'];
    two.topics.localTopics = [];
    join(one.mesh, two.mesh);
    await until(() => two.topics.interest.length > 0, 'the late joiner to hear');
    expect(two.topics.interest).toEqual([{ worker: 1, topics: ['x', 'y'], subscribed: true }]);
    // Nothing subscribed on worker 2: worker 1 hears nothing.
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(one.topics.interest).toEqual([]);
  });

  it('copies a publish below the pool threshold', async () => {
    const { pool, one, two } = setup();
    join(one.mesh, two.mesh);
    const plain = bytes(100, 1);
    const compressed = bytes(50, 2);
    one.mesh.publish(new Set([2]), 't', plain, compressed, 'high');
    expect(pool.stats()).toEqual(FREE);
    await until(() => two.topics.deliveries.length > 0, 'the publish');
    const [delivery] = two.topics.deliveries;
    expect(delivery!.message).toMatchObject({ type: 'publish', topic: 't', priority: 'high', plainLength: 100, compressedLength: 50, handle: -1 });
    expect(delivery!.message.bytes).not.toBeNull();
    expect(delivery!.release).toBeNull();
    expect(delivery!.frames.equals(Buffer.concat([plain, compressed]))).toBe(true);
  });

  it('sends a publish at the threshold through the pool; the receiver’s release frees the pages', async () => {
    const { pool, one, two } = setup();
    join(one.mesh, two.mesh);
    const plain = bytes(THRESHOLD, 7);
    one.mesh.publish(new Set([2]), 't', plain, null, 'normal');
    // Held by worker 2 only: the publisher let go once it wrote the pages.
    expect(pool.stats()).toEqual({ pagesTotal: PAGES, pagesFree: PAGES - 2, allocations: 1 });
    await until(() => two.topics.deliveries.length > 0, 'the pooled publish');
    const [delivery] = two.topics.deliveries;
    expect(delivery!.message).toMatchObject({ plainLength: THRESHOLD, compressedLength: 0, bytes: null });
    expect(delivery!.message.handle).toBeGreaterThanOrEqual(0);
    expect(delivery!.frames.equals(plain)).toBe(true);
    expect(delivery!.release).not.toBeNull();
    expect(pool.stats().allocations).toBe(1);
    delivery!.release!();
    expect(pool.stats()).toEqual(FREE);
  });

  it('publishes the plain and compressed frames back to back in the pool, to every interested peer', async () => {
    const pool = SlabPool.create({ pageSize: PAGE, pageCount: PAGES, maxWorkers: 4 });
    for (const w of [1, 2, 3]) pool.markAlive(w, 1);
    const sides = [1, 2, 3].map((worker) => {
      const mesh = new PeerMesh(worker, 1, SlabPool.attach(pool.buffer, { worker }), THRESHOLD, silentLogger());
      const topics = new RecordingTopics();
      mesh.attach(topics);
      meshes.push(mesh);
      return { mesh, topics };
    });
    const [one, two, three] = sides as [(typeof sides)[0], (typeof sides)[0], (typeof sides)[0]];
    for (const [a, b, wa, wb] of [[one, two, 1, 2], [one, three, 1, 3], [two, three, 2, 3]] as const) {
      const { port1, port2 } = new MessageChannel();
      a.mesh.add(wb, 1, port1);
      b.mesh.add(wa, 1, port2);
    }
    const plain = bytes(200, 3);
    const compressed = bytes(150, 4);
    one.mesh.publish(new Set([2, 3]), 't', plain, compressed, 'low');
    await until(() => two.topics.deliveries.length > 0 && three.topics.deliveries.length > 0, 'both peers');
    for (const side of [two, three]) {
      const [delivery] = side.topics.deliveries;
      expect(delivery!.message).toMatchObject({ plainLength: 200, compressedLength: 150, bytes: null, priority: 'low' });
      expect(delivery!.frames.equals(Buffer.concat([plain, compressed]))).toBe(true);
    }
    two.topics.deliveries[0]!.release!();
    expect(pool.stats().allocations).toBe(1);
    three.topics.deliveries[0]!.release!();
    expect(pool.stats()).toEqual(FREE);
  });

  it('falls back to copying when the pool is full', async () => {
    const { pool, one, two } = setup();
    join(one.mesh, two.mesh);
    const filler = pool.allocate(pool.capacity, [{ worker: 1, generation: 1 }]);
    expect(filler.ok).toBe(true);
    const plain = bytes(1000, 9);
    one.mesh.publish(new Set([2]), 't', plain, null, 'normal');
    await until(() => two.topics.deliveries.length > 0, 'the copied publish');
    const [delivery] = two.topics.deliveries;
    expect(delivery!.message.bytes).not.toBeNull();
    expect(delivery!.release).toBeNull();
    expect(delivery!.frames.equals(plain)).toBe(true);
    expect(pool.stats().allocations).toBe(1); // only the filler
  });

  it('does not deliver a pooled publish whose allocation is already gone', async () => {
    const { pool, one, two } = setup();
    join(one.mesh, two.mesh);
    one.mesh.publish(new Set([2]), 't', bytes(THRESHOLD, 1), null, 'normal');
    // Worker 2 is swept (as if it had died) before it reads the message: the pages are freed.
    expect(pool.markDead(2)).toBe(1);
    expect(pool.stats()).toEqual(FREE);
    one.mesh.publish(new Set([2]), 't', bytes(10, 2), null, 'normal');
    await until(() => two.topics.deliveries.length > 0, 'the later publish');
    expect(two.topics.deliveries).toHaveLength(1);
    expect(two.topics.deliveries[0]!.frames.equals(bytes(10, 2))).toBe(true);
  });

  it('remove() releases pooled publishes still queued on the port and forgets the worker', async () => {
    const { pool, one, two } = setup();
    join(one.mesh, two.mesh);
    one.mesh.publish(new Set([2]), 't', bytes(THRESHOLD, 1), null, 'normal');
    one.mesh.publish(new Set([2]), 't', bytes(10, 2), null, 'normal');
    one.mesh.publish(new Set([2]), 't', bytes(2 * PAGE, 3), null, 'normal');
    expect(pool.stats().allocations).toBe(2);

    two.mesh.remove(1);
    expect(pool.stats()).toEqual(FREE);
    expect(two.topics.forgotten).toEqual([1]);
    two.mesh.remove(1); // gone already: nothing more
    expect(two.topics.forgotten).toEqual([1]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(two.topics.deliveries).toEqual([]);

    // Worker 2 left: worker 1 sends it nothing more, and nothing is pinned in the pool.
    one.mesh.remove(2);
    one.mesh.publish(new Set([2]), 't', bytes(THRESHOLD, 1), null, 'normal');
    expect(pool.stats()).toEqual(FREE);
    expect(one.topics.forgotten).toEqual([2]);
  });

  it('replaces a peer added again, and close() forgets every peer', async () => {
    const { one, two } = setup();
    join(one.mesh, two.mesh);
    // Worker 2 restarted: a new port replaces the old one.
    const { port1, port2 } = new MessageChannel();
    one.mesh.add(2, 2, port1);
    expect(one.topics.forgotten).toEqual([2]);
    const received: unknown[] = [];
    port2.on('message', (message) => received.push(message));
    one.mesh.publish(new Set([2]), 't', bytes(10, 5), null, 'normal');
    await until(() => received.length > 0, 'the publish on the new port');
    expect(received[0]).toMatchObject({ type: 'publish', topic: 't', plainLength: 10 });
    port2.close();

    two.mesh.close();
    expect(two.topics.forgotten).toEqual([1]);
  });
});
