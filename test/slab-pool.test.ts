import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Worker, MessageChannel } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { SlabPool } from '../src/shared/slab-pool.ts';
import type { Holder, SlabAllocation } from '../src/shared/slab-pool.ts';
import type { BroadcastResult, FixtureData } from './fixtures/slab-pool/worker.ts';

const FIXTURE = new URL('./fixtures/slab-pool/worker.ts', import.meta.url);
const PAGE = 256;

const h = (worker: number, generation = 1): Holder => ({ worker, generation });

function pool(pageCount = 16, alive: readonly number[] = [1, 2, 3]): SlabPool {
  const p = SlabPool.create({ pageSize: PAGE, pageCount, maxWorkers: 8 });
  for (const w of alive) p.markAlive(w, 1);
  return p;
}

function handleOf(a: SlabAllocation): number {
  if (!a.ok) throw new Error(`allocation failed: ${a.reason}`);
  return a.handle;
}

function spawn(data: FixtureData, transferList: MessagePort[] = []): Worker {
  return new Worker(FIXTURE, { workerData: data, transferList });
}

/** Runs markDead in another thread so a lock left held by a dead worker fails the test instead of hanging it. */
async function markDeadElsewhere(p: SlabPool, worker: number): Promise<number | 'deadlock'> {
  const w = spawn({ mode: 'mark-dead', buffer: p.buffer, worker });
  try {
    return await Promise.race([once(w, 'message').then(([n]) => n as number), sleep(5000).then(() => 'deadlock' as const)]);
  } finally {
    await w.terminate();
  }
}

describe('SlabPool', () => {
  it('round-trips bytes to another attached view and frees after the last holder releases', () => {
    const p = pool();
    const a = p.allocate(1000, [h(1), h(2)]);
    expect(a).toMatchObject({ ok: true, holders: [h(1), h(2)] });
    const handle = handleOf(a);
    p.bytes(handle).fill(0xab);
    expect(p.stats()).toEqual({ pagesTotal: 16, pagesFree: 12, allocations: 1 });

    const other = SlabPool.attach(p.buffer, { worker: 2 });
    expect(other.length(handle)).toBe(1000);
    expect(other.bytes(handle).equals(Buffer.alloc(1000, 0xab))).toBe(true);

    expect(p.release(handle, 1)).toBe(true);
    expect(p.stats().allocations).toBe(1);
    expect(other.release(handle, 2)).toBe(true);
    expect(p.stats()).toEqual({ pagesTotal: 16, pagesFree: 16, allocations: 0 });
    expect(p.release(handle, 2)).toBe(false);
    expect(() => p.bytes(handle)).toThrow(RangeError);
  });

  it('reuses freed pages under a new handle; the old handle goes stale', () => {
    const p = pool();
    const first = handleOf(p.allocate(100, [h(1)]));
    const offset = p.bytes(first).byteOffset;
    p.release(first, 1);
    const second = handleOf(p.allocate(100, [h(1)]));
    expect(p.bytes(second).byteOffset).toBe(offset);
    expect(second).not.toBe(first);
    expect(() => p.length(first)).toThrow(RangeError);
    expect(p.release(first, 1)).toBe(false);
    expect(p.stats().allocations).toBe(1);
  });

  it('reports full without growing, and recovers after a release', () => {
    const p = pool(4);
    const handles = [0, 1, 2, 3].map(() => handleOf(p.allocate(PAGE, [h(1)])));
    expect(p.allocate(1, [h(1)])).toEqual({ ok: false, reason: 'full' });
    expect(p.buffer.byteLength).toBe(SlabPool.attach(p.buffer).buffer.byteLength);
    p.release(handles[2]!, 1);
    expect(p.allocate(1, [h(1)]).ok).toBe(true);
  });

  it('rejects an allocation larger than the whole pool', () => {
    const p = pool(4);
    expect(p.capacity).toBe(4 * PAGE);
    expect(p.allocate(4 * PAGE + 1, [h(1)])).toEqual({ ok: false, reason: 'too-large' });
    expect(p.allocate(4 * PAGE, [h(1)]).ok).toBe(true);
  });

  it('gives multi-page allocations contiguous pages', () => {
    const p = pool(8);
    const big = handleOf(p.allocate(2 * PAGE + 1, [h(1)]));
    expect(p.stats().pagesFree).toBe(5);
    const next = handleOf(p.allocate(10, [h(1)]));
    const bytes = p.bytes(big);
    expect(bytes.length).toBe(2 * PAGE + 1);
    expect(p.bytes(next).byteOffset).toBe(bytes.byteOffset + 3 * PAGE);
    bytes.fill(1);
    p.bytes(next).fill(2);
    expect(bytes.every((b) => b === 1)).toBe(true);
  });

  it('places first fit and needs a contiguous run, not just enough free pages', () => {
    const p = pool(8);
    const [a, b, c, d] = [0, 1, 2, 3].map(() => handleOf(p.allocate(2 * PAGE, [h(1)])));
    const bOffset = p.bytes(b!).byteOffset;
    p.release(b!, 1);
    p.release(d!, 1);
    expect(p.stats().pagesFree).toBe(4);
    expect(p.allocate(3 * PAGE, [h(1)])).toEqual({ ok: false, reason: 'full' });
    expect(p.bytes(handleOf(p.allocate(PAGE, [h(1)]))).byteOffset).toBe(bOffset);
    expect([a, c].every((x) => p.length(x!) === 2 * PAGE)).toBe(true);
  });

  it('records only holders alive with exactly that generation, each once', () => {
    const p = pool(8, [1, 2]);
    const a = p.allocate(10, [h(1), h(2, 2), h(3), h(1)]);
    expect(a).toMatchObject({ ok: true, holders: [h(1)] });
    const handle = handleOf(a);
    expect(p.release(handle, 2)).toBe(false);
    expect(p.release(handle, 3)).toBe(false);
    expect(p.stats().allocations).toBe(1);
    expect(p.release(handle, 1)).toBe(true);
    expect(p.stats().allocations).toBe(0);
  });

  it('reserves nothing when no requested holder is alive', () => {
    const p = pool(8, [1]);
    expect(p.allocate(10, [h(2), h(1, 7)])).toEqual({ ok: false, reason: 'no-holders' });
    expect(p.allocate(10, [])).toEqual({ ok: false, reason: 'no-holders' });
    expect(p.stats().pagesFree).toBe(8);
  });

  it('markDead frees allocations whose only remaining holder died and leaves the others', () => {
    const p = pool();
    const x = handleOf(p.allocate(10, [h(1), h(2)]));
    const y = handleOf(p.allocate(10, [h(1)]));
    const z = handleOf(p.allocate(10, [h(2), h(3)]));
    p.release(x, 2);
    expect(p.markDead(1)).toBe(2);
    expect(p.stats()).toMatchObject({ allocations: 1, pagesFree: 15 });
    expect(() => p.bytes(x)).toThrow(RangeError);
    expect(() => p.bytes(y)).toThrow(RangeError);
    expect(p.length(z)).toBe(10);
    // Dead workers are no longer recorded; a restart under a new generation is.
    expect(p.allocate(10, [h(1)])).toEqual({ ok: false, reason: 'no-holders' });
    p.markAlive(1, 2);
    expect(p.allocate(10, [h(1, 1), h(1, 2)])).toMatchObject({ ok: true, holders: [h(1, 2)] });
  });

  it('does not release twice when a swept worker releases late', () => {
    const p = pool();
    const handle = handleOf(p.allocate(10, [h(1), h(2)]));
    expect(p.markDead(1)).toBe(1);
    expect(p.release(handle, 1)).toBe(false);
    expect(p.stats().allocations).toBe(1);
    expect(p.release(handle, 2)).toBe(true);
    expect(p.stats().allocations).toBe(0);
  });

  it('sweeps a slot that is marked alive under a new generation without markDead', () => {
    const p = pool();
    handleOf(p.allocate(10, [h(1)]));
    p.markAlive(1, 2);
    expect(p.stats()).toMatchObject({ allocations: 0, pagesFree: 16 });
  });

  it('refuses a buffer that is not a pool', () => {
    expect(() => SlabPool.attach(new SharedArrayBuffer(1024))).toThrow(TypeError);
    expect(() => SlabPool.create({ pageSize: 12 })).toThrow(RangeError);
  });

  it('keeps pagesFree, placement and data consistent with a model over random operations', () => {
    const PAGES = 16;
    const WORKERS = 4;
    const worker = fc.integer({ min: 0, max: WORKERS - 1 });
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('alloc' as const), length: fc.integer({ min: 0, max: 18 * 64 }), holders: fc.array(fc.record({ worker, generation: fc.integer({ min: 0, max: 1 }) }), { maxLength: 5 }) }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(), worker }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('dead' as const), worker }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('alive' as const), worker, generation: fc.integer({ min: 0, max: 1 }) }) },
    );

    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const p = SlabPool.create({ pageSize: 64, pageCount: PAGES, maxWorkers: WORKERS });
        const alive = new Map<number, number>(); // worker -> generation
        const owner: (number | null)[] = new Array(PAGES).fill(null); // page -> handle
        const live = new Map<number, { start: number; pages: number; holders: Set<number>; tag: number }>();
        const everHandles: number[] = [];
        let base: number | null = null; // byteOffset of page 0
        let tags = 0;

        const free = (handle: number): void => {
          const m = live.get(handle)!;
          owner.fill(null, m.start, m.start + m.pages);
          live.delete(handle);
        };
        const sweep = (w: number): number => {
          let n = 0;
          for (const [handle, m] of live) {
            if (!m.holders.delete(w)) continue;
            n++;
            if (m.holders.size === 0) free(handle);
          }
          return n;
        };

        for (const o of ops) {
          if (o.kind === 'alloc') {
            const expected: number[] = [];
            for (const x of o.holders) if (alive.get(x.worker) === x.generation && !expected.includes(x.worker)) expected.push(x.worker);
            const pages = Math.max(1, Math.ceil(o.length / 64));
            let start = -1;
            for (let s = 0; s + pages <= PAGES && start < 0; s++) if (owner.slice(s, s + pages).every((x) => x === null)) start = s;
            const a = p.allocate(o.length, o.holders);
            if (pages > PAGES) expect(a).toEqual({ ok: false, reason: 'too-large' });
            else if (expected.length === 0) expect(a).toEqual({ ok: false, reason: 'no-holders' });
            else if (start < 0) expect(a).toEqual({ ok: false, reason: 'full' });
            else {
              const handle = handleOf(a);
              expect(a.ok && a.holders.map((x) => x.worker)).toEqual(expected);
              const bytes = p.bytes(handle);
              expect(bytes.length).toBe(o.length);
              base ??= bytes.byteOffset - start * 64;
              expect(bytes.byteOffset).toBe(base + start * 64);
              const tag = ++tags & 0xff;
              bytes.fill(tag);
              owner.fill(handle, start, start + pages);
              live.set(handle, { start, pages, holders: new Set(expected), tag });
              everHandles.push(handle);
            }
          } else if (o.kind === 'release') {
            if (everHandles.length === 0) continue;
            const handle = everHandles[o.pick % everHandles.length]!;
            const m = live.get(handle);
            const holds = m?.holders.has(o.worker) ?? false;
            expect(p.release(handle, o.worker)).toBe(holds);
            if (holds) {
              m!.holders.delete(o.worker);
              if (m!.holders.size === 0) free(handle);
            }
          } else if (o.kind === 'dead') {
            alive.delete(o.worker);
            expect(p.markDead(o.worker)).toBe(sweep(o.worker));
          } else {
            const was = alive.get(o.worker);
            if (was !== undefined && was !== o.generation) sweep(o.worker);
            alive.set(o.worker, o.generation);
            p.markAlive(o.worker, o.generation);
          }

          const usedPages = owner.filter((x) => x !== null).length;
          expect(p.stats()).toEqual({ pagesTotal: PAGES, pagesFree: PAGES - usedPages, allocations: live.size });
          // A page freed twice or early would be handed out again and overwritten.
          for (const [handle, m] of live) expect(p.bytes(handle).every((b) => b === m.tag)).toBe(true);
          for (const handle of everHandles) if (!live.has(handle)) expect(() => p.bytes(handle)).toThrow(RangeError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('SlabPool across worker threads', () => {
  it('broadcasts thousands of payloads between 3 workers without corruption or leaks', async () => {
    const p = SlabPool.create({ pageSize: PAGE, pageCount: 128, maxWorkers: 8 });
    const ids = [1, 2, 3];
    for (const id of ids) p.markAlive(id, 1);
    const holders = ids.map((id) => h(id));
    const peers = new Map<number, { worker: number; port: MessagePort }[]>(ids.map((id) => [id, []]));
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const { port1, port2 } = new MessageChannel();
        peers.get(ids[i]!)!.push({ worker: ids[j]!, port: port1 });
        peers.get(ids[j]!)!.push({ worker: ids[i]!, port: port2 });
      }
    }
    const iterations = 10_000;
    const workers = ids.map((id) => {
      const mine = peers.get(id)!;
      return spawn({ mode: 'broadcast', buffer: p.buffer, self: h(id), holders, peers: mine, iterations, maxLength: 2 * PAGE }, mine.map((x) => x.port));
    });
    await Promise.all(workers.map((w) => once(w, 'message')));
    const done = workers.map(async (w) => (await once(w, 'message'))[0] as BroadcastResult);
    for (const w of workers) w.postMessage('go');
    const results = await Promise.all(done);
    await Promise.all(workers.map((w) => w.terminate()));

    for (const r of results) expect(r).toMatchObject({ received: iterations * 2, corrupt: 0 });
    // Small enough a pool that publishers hit "full" (and copied) some of the time, not always.
    const full = results.reduce((n, r) => n + r.full, 0);
    expect(full).toBeGreaterThan(0);
    expect(full).toBeLessThan(iterations * ids.length);
    expect(p.stats()).toEqual({ pagesTotal: 128, pagesFree: 128, allocations: 0 });
  });

  it('frees everything a terminated worker held once it is marked dead', async () => {
    const p = SlabPool.create({ pageSize: PAGE, pageCount: 64, maxWorkers: 8 });
    p.markAlive(0, 1); // this thread plays worker 0
    for (let round = 0; round < 3; round++) {
      p.markAlive(4, round + 1);
      const w = spawn({ mode: 'hoard', buffer: p.buffer, self: h(4, round + 1), sharedWith: h(0) });
      const [shared] = (await once(w, 'message')) as [number[]];
      expect(shared).toHaveLength(4);
      await sleep(5 + round * 10);
      await w.terminate();

      // The churn loop makes it likely that termination lands inside a critical section.
      expect(await markDeadElsewhere(p, 4)).toBeGreaterThanOrEqual(8);
      expect(p.stats().allocations).toBe(4);
      for (const handle of shared) expect(p.release(handle, 0)).toBe(true);
      expect(p.stats()).toEqual({ pagesTotal: 64, pagesFree: 64, allocations: 0 });
    }
  });

  it('markDead takes over the lock from a worker terminated while holding it', async () => {
    const p = pool(8, [2, 3]);
    const held = handleOf(p.allocate(10, [h(2)]));
    const kept = handleOf(p.allocate(10, [h(3)]));
    // White box: the lock word (header word 5) as worker 2's pool writes it, (slot + 1) << 1.
    Atomics.store(new Int32Array(p.buffer), 5, (2 + 1) << 1);

    expect(await markDeadElsewhere(p, 2)).toBe(1);
    expect(() => p.bytes(held)).toThrow(RangeError);
    expect(p.length(kept)).toBe(10);
    expect(p.allocate(10, [h(3)]).ok).toBe(true);
  });
});
