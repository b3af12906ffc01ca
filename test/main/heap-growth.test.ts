/**
 * heapGrowingPercent: V8's growing factor set at run time reaches the workers started after it,
 * and a value node was started with stays. Read from V8's own trace of a worker's full
 * collection (the next limit against what survived), in a child process: the flag is process-wide.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { applyHeapGrowth, heapGrowthGivenToNode } from '../../src/main/heap-growth.ts';

const PROBE = fileURLToPath(new URL('../fixtures/heap-growth/probe.ts', import.meta.url));

interface Probe {
  readonly applied: boolean;
  /** The old generation's limit after the worker's last full collection, over what survived it. */
  readonly growth: number;
}

function probe(percents: readonly number[], nodeFlags: readonly string[] = []): Probe {
  const run = spawnSync(process.execPath, ['--expose-gc', '--trace-gc-nvp', ...nodeFlags, PROBE, ...percents.map(String)], { encoding: 'utf8', timeout: 30_000 });
  expect(run.status, run.stderr).toBe(0);
  const lines = run.stdout.trim().split('\n');
  // The worker's collections: the ones that kept the 30 MB (the main thread keeps a few).
  const full = lines
    .map((line) => /GC: (\{.*\})/.exec(line)?.[1])
    .filter((json): json is string => json !== undefined)
    .map((json) => JSON.parse(json) as { gc: string; end_object_size: number; old_gen_allocation_limit: number })
    .filter((gc) => gc.gc === 'mc' && gc.end_object_size > 20 * 1024 * 1024);
  expect(full.length).toBeGreaterThan(0);
  const last = full.at(-1)!;
  return { applied: (JSON.parse(lines.at(-1)!) as { applied: boolean }).applied, growth: last.old_gen_allocation_limit / last.end_object_size };
}

describe('heap growth', () => {
  it('sets the factor the workers started after it grow by (1 + percent / 100)', () => {
    const four = probe([300]);
    expect(four.applied).toBe(true);
    expect(four.growth).toBeGreaterThan(3.5);
    const oneAndHalf = probe([50]);
    expect(oneAndHalf.applied).toBe(true);
    expect(oneAndHalf.growth).toBeGreaterThan(1.4);
    expect(oneAndHalf.growth).toBeLessThan(2.2);
  });

  it('leaves a value node was started with; 0 gives V8 its own choice back', () => {
    const users = probe([300], ['--heap-growing-percent=50']);
    expect(users.applied).toBe(false);
    expect(users.growth).toBeLessThan(2.2);
    // A server with 50, then one with 0 in the same process: V8's own factor again, not 1.5
    // (V8 picks 4 for this heap: 4.22 in every run here).
    const undone = probe([50, 0]);
    expect(undone.applied).toBe(false);
    expect(undone.growth).toBeGreaterThan(2.2);
    expect(applyHeapGrowth(0)).toBe(false);
  });

  it('finds the flag on the command line, in either spelling', () => {
    expect(heapGrowthGivenToNode(['--heap-growing-percent=100'])).toBe(true);
    expect(heapGrowthGivenToNode(['--expose-gc', '--heap_growing_percent', '100'])).toBe(true);
    expect(heapGrowthGivenToNode(['--heap-growing_percent=100'])).toBe(true);
    expect(heapGrowthGivenToNode(['--expose-gc', '--max-old-space-size=512'])).toBe(false);
    expect(heapGrowthGivenToNode(['--heap-growing-percentage=1'])).toBe(false);
  });
});
