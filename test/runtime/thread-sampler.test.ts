import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ThreadSampler } from '../../src/runtime/thread-sampler.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';

/** Keeps this thread's event loop busy for `ms`. */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('ThreadSampler', () => {
  it("writes this thread's CPU, busy time and heap into the slot", () => {
    const slot = new WorkerCounters(1).slot(0);
    const sampler = new ThreadSampler(slot);
    try {
      block(30);
      sampler.sample();
      expect(slot[Counter.CpuUserSeconds]! + slot[Counter.CpuSystemSeconds]!).toBeGreaterThan(0.01);
      expect(slot[Counter.LoopBusySeconds]).toBeGreaterThan(0.01);
      expect(slot[Counter.HeapUsedBytes]).toBeGreaterThan(0);
      expect(slot[Counter.HeapTotalBytes]).toBeGreaterThanOrEqual(slot[Counter.HeapUsedBytes]!);
    } finally {
      sampler.stop();
    }
  });

  it('adds to what the slot held: a replacement worker keeps counting where its predecessor stopped', () => {
    const slot = new WorkerCounters(1).slot(0);
    slot[Counter.CpuUserSeconds] = 100;
    slot[Counter.LoopBusySeconds] = 50;
    const sampler = new ThreadSampler(slot);
    try {
      sampler.sample();
      expect(slot[Counter.CpuUserSeconds]).toBeGreaterThan(100);
      expect(slot[Counter.LoopBusySeconds]).toBeGreaterThanOrEqual(50);
    } finally {
      sampler.stop();
    }
  });

  it('publishes the event-loop delay of each completed window, without the sampling interval', async () => {
    const slot = new WorkerCounters(1).slot(0);
    const sampler = new ThreadSampler(slot, 200);
    try {
      sampler.sample(); // inside the first window: nothing published yet
      expect(slot[Counter.LoopDelayMax]).toBe(0);
      await sleep(50);
      block(400); // one stall the monitor's timer sees as late
      await sleep(80);
      sampler.sample();
      expect(slot[Counter.LoopDelayMax]).toBeGreaterThan(0.3);
      expect(slot[Counter.LoopDelayMax]).toBeLessThan(5);
      expect(slot[Counter.LoopDelayP99]).toBeLessThanOrEqual(slot[Counter.LoopDelayMax]!);
      expect(slot[Counter.LoopDelayP50]).toBeLessThanOrEqual(slot[Counter.LoopDelayP99]!);
      // A window after it: the stall is gone from the figures. A loaded machine may stall this
      // window too, rarely as long; a maximum carried over from the last window never drops below it.
      const stalled = slot[Counter.LoopDelayMax]!;
      for (let window = 0; window < 5; window++) {
        await sleep(250);
        sampler.sample();
        if (slot[Counter.LoopDelayMax]! < stalled) break;
      }
      expect(slot[Counter.LoopDelayMax]).toBeLessThan(stalled);
    } finally {
      sampler.stop();
    }
  });
});
