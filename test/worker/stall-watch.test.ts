import { afterEach, describe, expect, it, vi } from 'vitest';
import { kBackloggedSince, kStalled } from '../../src/worker/connection.ts';
import type { Connection } from '../../src/worker/connection.ts';
import { StallWatch } from '../../src/worker/stall-watch.ts';

/** A connection as the watch sees it: when it became backlogged, and what it does when stalled. */
function fake(since: number | null, onStalled: (c: Connection) => void = () => {}) {
  const connection = {
    [kBackloggedSince]: since,
    [kStalled]: vi.fn(() => onStalled(connection as unknown as Connection)),
  };
  return connection as unknown as Connection & { [kStalled]: ReturnType<typeof vi.fn> };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('StallWatch', () => {
  it('hands connections backlogged for the timeout or longer to their policy', () => {
    const old = fake(1000);
    const exact = fake(5000);
    const recent = fake(5001);
    const none = fake(null);
    const watch = new StallWatch(new Set([old, exact, recent, none]), 4000);
    watch.check(9000);
    expect([old, exact, recent, none].map((c) => c[kStalled].mock.calls.length)).toEqual([1, 1, 0, 0]);
  });

  it('copes with connections leaving the set while it acts on them', () => {
    const set = new Set<Connection>();
    const a = fake(0, (c) => set.delete(c));
    const b = fake(0, (c) => set.delete(c));
    set.add(a).add(b);
    new StallWatch(set, 10).check(100);
    expect([a[kStalled].mock.calls.length, b[kStalled].mock.calls.length, set.size]).toEqual([1, 1, 0]);
  });

  it('checks on a timer a quarter of the timeout apart, and not at all with the timeout off', () => {
    vi.useFakeTimers({ now: 0 });
    const stalled = fake(0);
    const watch = new StallWatch(new Set([stalled]), 2000);
    watch.start();
    vi.advanceTimersByTime(1999);
    expect(stalled[kStalled]).not.toHaveBeenCalled();
    vi.advanceTimersByTime(500);
    expect(stalled[kStalled]).toHaveBeenCalledTimes(1);
    watch.stop();
    vi.advanceTimersByTime(10_000);
    expect(stalled[kStalled]).toHaveBeenCalledTimes(1);
    const off = new StallWatch(new Set([fake(0)]), 0);
    off.start();
    expect(vi.getTimerCount()).toBe(0);
  });
});
