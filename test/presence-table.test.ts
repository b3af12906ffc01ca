import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PresenceTable } from '../src/shared/presence-table.ts';

describe('PresenceTable', () => {
  it('counts a key over every worker, and tells topics and tags apart', () => {
    const table = PresenceTable.create(16, 3);
    const bucket0 = table.join(0, 'topic', 'room');
    table.adjust(0, bucket0, 1);
    const bucket2 = table.join(2, 'topic', 'room');
    expect(bucket2).toBe(bucket0);
    expect(table.count('topic', 'room')).toBe(3);
    expect(table.count('tag', 'room')).toBe(0);
    expect(table.workersWith('topic', 'room')).toEqual([0, 2]);
    table.join(1, 'tag', 'room');
    expect(table.workersWith('tag', 'room')).toEqual([1]);
    table.adjust(0, bucket0, -1);
    table.leave(0, bucket0);
    expect(table.count('topic', 'room')).toBe(1);
    expect(table.workersWith('topic', 'room')).toEqual([2]);
  });

  it('is read the same through another view of its buffer', () => {
    const table = PresenceTable.create(16, 2);
    table.join(1, 'topic', 'a');
    const other = PresenceTable.attach(table.buffer);
    expect(other.count('topic', 'a')).toBe(1);
    expect(other.capacity).toBe(16);
    expect(other.workers).toBe(2);
  });

  it('clears a dead worker\'s counts, and a lock it died holding', () => {
    const table = PresenceTable.create(16, 2);
    table.join(0, 'topic', 'a');
    table.join(1, 'topic', 'a');
    // Worker 1 dies inside the lock.
    new Int32Array(table.buffer)[0] = 2;
    table.clearWorker(1);
    expect(table.count('topic', 'a')).toBe(1);
    expect(table.workersWith('topic', 'a')).toEqual([0]);
    // The lock is free again: a join does not wait forever.
    expect(table.join(0, 'topic', 'b')).toBeGreaterThan(0);
  });

  it('reports a full table and marks it overflowed, then takes keys again once some are left', () => {
    const table = PresenceTable.create(4, 1);
    const buckets = ['a', 'b', 'c', 'd'].map((key) => table.join(0, 'tag', key));
    expect(buckets.every((b) => b > 0)).toBe(true);
    expect(table.overflowed).toBe(false);
    expect(table.join(0, 'tag', 'e')).toBe(-1);
    expect(table.overflowed).toBe(true);
    expect(table.count('tag', 'e')).toBe(0);
    table.leave(0, buckets[1]!);
    expect(table.join(0, 'tag', 'e')).toBeGreaterThan(0);
    expect(table.count('tag', 'e')).toBe(1);
    expect(table.count('tag', 'a') + table.count('tag', 'c') + table.count('tag', 'd')).toBe(3);
  });

  it('matches a model under random joins and leaves: counts, holders, and no key in two buckets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ worker: fc.integer({ min: 0, max: 2 }), key: fc.integer({ min: 0, max: 40 }), join: fc.boolean() }), { maxLength: 300 }),
        (steps) => {
          const table = PresenceTable.create(64, 3);
          const model = new Map<string, number[]>();
          const buckets = new Map<string, number>();
          for (const { worker, key, join } of steps) {
            const name = `k${key}`;
            const counts = model.get(name) ?? [0, 0, 0];
            model.set(name, counts);
            const mine = `${worker}:${name}`;
            if (join) {
              const known = buckets.get(mine);
              if (known === undefined) buckets.set(mine, table.join(worker, 'topic', name));
              else table.adjust(worker, known, 1);
              counts[worker]!++;
            } else if (counts[worker]! > 0) {
              counts[worker]!--;
              const bucket = buckets.get(mine)!;
              if (counts[worker] === 0) {
                table.leave(worker, bucket);
                buckets.delete(mine);
              } else table.adjust(worker, bucket, -1);
            }
          }
          for (const [name, counts] of model) {
            expect(table.count('topic', name)).toBe(counts[0]! + counts[1]! + counts[2]!);
            expect(table.workersWith('topic', name)).toEqual([0, 1, 2].filter((w) => counts[w]! > 0));
          }
        },
      ),
    );
  });

  it('stays exact with workers joining and leaving the same keys at once (real threads)', async () => {
    const table = PresenceTable.create(256, 4);
    // The table's own code runs in each thread: import it as the workers do.
    const url = new URL('../src/shared/presence-table.ts', import.meta.url).href;
    const script = `
      import { workerData, parentPort } from 'node:worker_threads';
      const { PresenceTable } = await import(${JSON.stringify(url)});
      const table = PresenceTable.attach(workerData.buffer);
      const me = workerData.worker;
      for (let round = 0; round < 200; round++) {
        const held = [];
        for (let k = 0; k < 20; k++) held.push(table.join(me, 'topic', 'k' + ((k * 7 + round) % 50)));
        for (const b of held) table.leave(me, b);
      }
      for (let k = 0; k < 10; k++) table.join(me, 'topic', 'final' + k);
      parentPort.postMessage('done');
    `;
    const workers = [0, 1, 2, 3].map((worker) => new Worker(new URL(`data:text/javascript,${encodeURIComponent(script)}`), { workerData: { buffer: table.buffer, worker } }));
    await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
    await Promise.all(workers.map((w) => w.terminate()));
    for (let k = 0; k < 10; k++) expect(table.count('topic', `final${k}`)).toBe(4);
    for (let k = 0; k < 50; k++) expect(table.count('topic', `k${k}`)).toBe(0);
  });
});
