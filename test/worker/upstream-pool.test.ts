import { describe, expect, it } from 'vitest';
import { resolveProxyTarget } from '../../src/shared/proxy-target.ts';
import { UpstreamPool, rendezvousScore } from '../../src/worker/upstream-pool.ts';

const target = (balance: 'least-connections' | 'round-robin', sticky?: string) => resolveProxyTarget({ url: ['ws://a', 'ws://b', 'ws://c'], balance, ...(sticky ? { sticky } : {}) }, 'test');
const [A, B, C] = ['ws://a/', 'ws://b/', 'ws://c/'];

describe('UpstreamPool', () => {
  it('round robin takes each upstream in turn', () => {
    const pool = new UpstreamPool();
    const t = target('round-robin');
    expect([0, 1, 2, 3].map(() => pool.order(t)[0])).toEqual([A, B, C, A]);
  });

  it('least connections takes the upstream holding fewest, equals in turn', () => {
    const pool = new UpstreamPool();
    const t = target('least-connections');
    pool.opened(A);
    pool.opened(A);
    pool.opened(B);
    expect(pool.order(t)[0]).toBe(C);
    pool.opened(C);
    expect([B, C]).toContain(pool.order(t)[0]);
    pool.closed(A);
    pool.closed(A);
    expect(pool.order(t)[0]).toBe(A);
    pool.closed(A);
    expect(pool.stats().find((s) => s.url === B)!.active).toBe(1);
    // Nothing open and nothing failed: nothing left to say about A.
    expect(pool.stats().find((s) => s.url === A)).toBeUndefined();
  });

  it('keeps no entry for URLs an app gives per request once their connections end', () => {
    const pool = new UpstreamPool();
    for (let i = 0; i < 5000; i++) {
      const url = `ws://up/users/${i}`;
      const t = resolveProxyTarget({ url: [url, `ws://spare/users/${i}`] }, 'test');
      const first = pool.order(t)[0]!;
      pool.opened(first);
      pool.closed(first);
    }
    expect(pool.stats()).toEqual([]);
    // A back-off long over is forgotten at the next failure, anyone's.
    pool.failed('ws://gone/', 0);
    pool.failed('ws://other/', 60_000);
    expect(pool.stats(60_000).map((s) => s.url)).toEqual(['ws://other/']);
  });

  it('rotates each list of URLs on its own', () => {
    const pool = new UpstreamPool();
    const t1 = target('round-robin');
    const t2 = resolveProxyTarget({ url: ['ws://x', 'ws://y'], balance: 'round-robin' }, 'test');
    expect([pool.order(t1)[0], pool.order(t2)[0], pool.order(t1)[0], pool.order(t2)[0], pool.order(t2)[0]]).toEqual([A, 'ws://x/', B, 'ws://y/', 'ws://x/']);
  });

  it('an upstream still holding connections keeps its count through a failure and back-off', () => {
    const pool = new UpstreamPool();
    const t = target('least-connections');
    pool.opened(A);
    pool.failed(A, 1000);
    pool.opened(B);
    expect(pool.order(t, null, 1500).at(-1)).toBe(A);
    expect(pool.stats(1500).find((s) => s.url === A)).toEqual({ url: A, active: 1, failures: 1, backingOff: true });
    pool.closed(A);
    expect(pool.stats(1500).find((s) => s.url === A)).toMatchObject({ active: 0, failures: 1 });
  });

  it('puts a failed upstream last for a back-off that doubles to 30 s, and a success resets it', () => {
    const pool = new UpstreamPool();
    const t = target('round-robin');
    const now = 1_000_000;
    expect(pool.failed(A, now)).toBe(1000);
    for (let i = 0; i < 3; i++) expect(pool.order(t, null, now + 500).at(-1)).toBe(A);
    // Past the back-off it takes its turn again.
    expect(new Set([0, 1, 2].map(() => pool.order(t, null, now + 1001)[0]))).toContain(A);
    expect(pool.failed(A, now)).toBe(2000);
    for (let i = 0; i < 10; i++) pool.failed(A, now);
    expect(pool.failed(A, now)).toBe(30_000);
    pool.opened(A);
    expect(pool.failed(A, now)).toBe(1000);
  });

  it('when all back off, the one whose retry comes first goes first', () => {
    const pool = new UpstreamPool();
    const t = target('round-robin');
    pool.failed(A, 0);
    pool.failed(A, 0);
    pool.failed(B, 0);
    pool.failed(C, 0);
    pool.failed(C, 0);
    pool.failed(C, 0);
    expect(pool.order(t, null, 10)).toEqual([B, A, C]);
  });

  it('a sticky key always ranks the upstreams the same way; one down moves only its own keys', () => {
    const pool = new UpstreamPool();
    const t = target('least-connections');
    const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    const first = new Map(keys.map((k) => [k, pool.order(t, k)[0]!]));
    for (const k of keys.slice(0, 20)) expect(pool.order(t, k)[0]).toBe(first.get(k));
    const counts = [A, B, C].map((u) => [...first.values()].filter((v) => v === u).length);
    for (const count of counts) expect(count).toBeGreaterThan(60);
    pool.failed(B, Date.now());
    for (const k of keys) {
      const now = pool.order(t, k)[0];
      if (first.get(k) !== B) expect(now).toBe(first.get(k));
      else expect(now).not.toBe(B);
    }
    expect(rendezvousScore('k', A)).toBe(rendezvousScore('k', A));
  });

  it('a single upstream is always the order', () => {
    const pool = new UpstreamPool();
    const one = resolveProxyTarget({ url: 'ws://only' }, 'test');
    pool.failed('ws://only/');
    expect(pool.order(one)).toEqual(['ws://only/']);
  });
});
