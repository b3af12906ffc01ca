import type { Bench } from 'tinybench';
import { SlabPool } from '../../src/shared/slab-pool.ts';
import type { Holder } from '../../src/shared/slab-pool.ts';

const SIZE = 64 * 1024;

/**
 * A 64 KiB broadcast to 3 workers: through the slab pool (one copy into the SAB, then a release
 * per holder) against the structured clone that postMessage makes of the payload per recipient.
 */
export function register(bench: Bench): void {
  const pool = SlabPool.create({ pageSize: 16 * 1024, pageCount: 64, maxWorkers: 4 });
  const holders: Holder[] = [0, 1, 2].map((worker) => ({ worker, generation: 1 }));
  for (const h of holders) pool.markAlive(h.worker, h.generation);
  const payload = new Uint8Array(SIZE).fill(0x5a);

  bench.add('slab-pool allocate+release 64 KiB', () => {
    const a = pool.allocate(SIZE, holders);
    if (!a.ok) throw new Error(`slab-pool bench: allocate failed (${a.reason})`);
    pool.bytes(a.handle).set(payload);
    for (const h of a.holders) pool.release(a.handle, h.worker);
  });

  bench.add('postMessage-style structuredClone of 64 KiB', () => {
    structuredClone(payload.buffer);
  });
}
