import { describe, expect, it } from 'vitest';
import { JITTER, LifetimeSweep } from '../../src/worker/lifetime-sweep.ts';

class Aged {
  closes: [number, string][] = [];
  readonly openedAt: number;
  constructor(openedAt: number) {
    this.openedAt = openedAt;
  }
  close(code: number, reason: string): void {
    this.closes.push([code, reason]);
  }
}

describe('LifetimeSweep', () => {
  it('closes a connection with 1001 once it is older than maxLifetime less its jitter', () => {
    const a = new Aged(0);
    const b = new Aged(5_000);
    const draws = [0, 1];
    const sweep = new LifetimeSweep([a, b], (c) => c.openedAt, 10, () => draws.shift()!);
    expect(sweep.sweep(9_999)).toBe(0);
    expect(sweep.sweep(10_000)).toBe(1);
    expect(a.closes).toEqual([[1001, 'connection lifetime reached']]);
    // b drew the most jitter: its limit is (1 - JITTER) of the lifetime.
    expect(sweep.sweep(5_000 + 10_000 * (1 - JITTER) - 1)).toBe(1);
    expect(b.closes).toEqual([]);
    sweep.sweep(5_000 + 10_000 * (1 - JITTER));
    expect(b.closes).toEqual([[1001, 'connection lifetime reached']]);
  });

  it('spreads the limits of connections opened together over the jitter window', () => {
    const opened = Array.from({ length: 200 }, () => new Aged(0));
    const sweep = new LifetimeSweep(opened, (c) => c.openedAt, 100);
    const closedBy = (ms: number): number => {
      sweep.sweep(ms);
      return opened.filter((c) => c.closes.length > 0).length;
    };
    expect(closedBy(100_000 * (1 - JITTER) - 1)).toBe(0);
    const half = closedBy(100_000 * (1 - JITTER / 2));
    expect(half).toBeGreaterThan(40);
    expect(half).toBeLessThan(160);
    expect(closedBy(100_000)).toBe(200);
  });

  it('does nothing with maxLifetime 0', () => {
    const sweep = new LifetimeSweep([new Aged(0)], (c) => c.openedAt, 0);
    sweep.start();
    sweep.stop();
  });
});
