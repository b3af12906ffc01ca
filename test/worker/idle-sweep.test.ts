import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdleSweep } from '../../src/worker/idle-sweep.ts';
import type { IdleWatched } from '../../src/worker/idle-sweep.ts';
import { recordingLogger } from '../support/fake-socket.ts';

/** A connection as the sweep sees it, recording what the sweep did to it at which tick. */
class Watched implements IdleWatched {
  readonly remoteAddress: string;
  lastActive = 0;
  readonly calls: string[] = [];
  readonly #sweep: () => IdleSweep<Watched>;

  constructor(name: string, sweep: () => IdleSweep<Watched>) {
    this.remoteAddress = name;
    this.#sweep = sweep;
  }

  /** A read: stamps the sweep's current tick, as a Connection does. */
  read(): void {
    this.lastActive = this.#sweep().tick;
  }

  ping(): void {
    this.calls.push(`ping@${this.#sweep().tick}`);
  }

  close(code: number, reason: string): void {
    this.calls.push(`close ${code} ${reason}@${this.#sweep().tick}`);
  }
}

function setup(idleTimeoutMs: number, sendPings = true, names = ['a']) {
  const connections = new Set<Watched>();
  const logger = recordingLogger();
  const sweep: IdleSweep<Watched> = new IdleSweep(connections, (c) => c.lastActive, { idleTimeoutMs, sendPings, logger });
  const watched = names.map((name) => new Watched(name, () => sweep));
  for (const w of watched) connections.add(w);
  const sweeps = (n: number) => {
    for (let i = 0; i < n; i++) sweep.sweep();
  };
  return { sweep, connections, watched, logger, sweeps };
}

describe('IdleSweep', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  // 4000 ms: a sweep every 1000 ms, close after 4 silent sweeps, ping after 2.
  it('pings once at half the timeout and closes with 1001 at the full timeout', () => {
    const { watched, sweeps } = setup(4000);
    const [a] = watched;
    sweeps(4);
    expect(a!.calls).toEqual(['ping@2', 'close 1001 idle timeout@4']);
  });

  it('pings only once per silence, however many sweeps pass before the close', () => {
    // 10 s: a sweep every 1000 ms, close after 10, ping after 5.
    const { watched, sweeps } = setup(10_000);
    sweeps(9);
    expect(watched[0]!.calls).toEqual(['ping@5']);
    sweeps(1);
    expect(watched[0]!.calls).toEqual(['ping@5', 'close 1001 idle timeout@10']);
  });

  it('a read resets the count: no close while the peer keeps talking, and a new ping after a new silence', () => {
    const { watched, sweeps } = setup(4000);
    const [a] = watched;
    sweeps(3); // ping at 2
    a!.read(); // at tick 3
    sweeps(2); // ticks 4, 5: silent 1, 2 → ping at 5
    expect(a!.calls).toEqual(['ping@2', 'ping@5']);
    sweeps(1); // tick 6: silent 3
    a!.read();
    sweeps(3); // ticks 7-9: silent 1-3
    expect(a!.calls).toEqual(['ping@2', 'ping@5', 'ping@8']);
    sweeps(1); // tick 10: silent 4
    expect(a!.calls.at(-1)).toBe('close 1001 idle timeout@10');
  });

  it('answering the ping (a pong is a read) keeps a quiet peer open', () => {
    const { watched, sweeps } = setup(4000);
    const [a] = watched;
    for (let i = 0; i < 20; i++) {
      const before = a!.calls.length;
      sweeps(1);
      if (a!.calls.length > before) a!.read(); // the pong comes back before the next sweep
    }
    expect(a!.calls.some((c) => c.startsWith('close'))).toBe(false);
    expect(a!.calls.filter((c) => c.startsWith('ping')).length).toBeGreaterThan(5);
  });

  it('without sendPings it never pings, and still closes', () => {
    const { watched, sweeps } = setup(4000, false);
    sweeps(4);
    expect(watched[0]!.calls).toEqual(['close 1001 idle timeout@4']);
  });

  it('judges each connection by its own last read', () => {
    const { watched, sweeps } = setup(4000, true, ['a', 'b']);
    const [a, b] = watched;
    sweeps(1);
    b!.read(); // b is one sweep behind a from here on
    sweeps(3);
    expect(a!.calls).toEqual(['ping@2', 'close 1001 idle timeout@4']);
    expect(b!.calls).toEqual(['ping@3']);
    sweeps(1);
    expect(b!.calls).toEqual(['ping@3', 'close 1001 idle timeout@5']);
  });

  it('logs each idle close at debug with the remote address', () => {
    const { sweeps, logger } = setup(4000, true, ['198.51.100.7']);
    sweeps(4);
    expect(logger.records.map((r) => [r.level, r.args[0]])).toEqual([['debug', { remote: '198.51.100.7' }]]);
  });

  it('sees connections added after it was created', () => {
    const { sweep, connections, sweeps } = setup(4000, true, []);
    sweeps(2);
    const late = new Watched('late', () => sweep);
    late.lastActive = sweep.tick;
    connections.add(late);
    sweeps(4);
    expect(late.calls).toEqual(['ping@4', 'close 1001 idle timeout@6']);
  });

  it('a very short timeout closes after one silent sweep and has no time to ping', () => {
    // 30 ms: the sweep period has a 50 ms floor, so one sweep is the whole timeout.
    const { watched, sweeps } = setup(30);
    sweeps(1);
    expect(watched[0]!.calls).toEqual(['close 1001 idle timeout@1']);
  });

  describe('start/stop', () => {
    it('sweeps on its own a few times per timeout once started, and stops when stopped', () => {
      vi.useFakeTimers();
      const { sweep, watched } = setup(1000); // a sweep every 250 ms: ping at 500, close at 1000
      sweep.start();
      sweep.start(); // idempotent: one timer
      vi.advanceTimersByTime(499);
      expect(sweep.tick).toBe(1);
      vi.advanceTimersByTime(1);
      expect(watched[0]!.calls).toEqual(['ping@2']);
      vi.advanceTimersByTime(500);
      expect(watched[0]!.calls).toEqual(['ping@2', 'close 1001 idle timeout@4']);
      sweep.stop();
      vi.advanceTimersByTime(10_000);
      expect(sweep.tick).toBe(4);
    });

    it('a timeout of 0 disables it', () => {
      vi.useFakeTimers();
      const { sweep, watched } = setup(0);
      sweep.start();
      vi.advanceTimersByTime(60_000);
      expect(sweep.tick).toBe(0);
      expect(watched[0]!.calls).toEqual([]);
    });

    it('long timeouts sweep at most once a second', () => {
      vi.useFakeTimers();
      const { sweep, watched } = setup(60_000); // close after 60 sweeps, ping after 30
      sweep.start();
      vi.advanceTimersByTime(30_000);
      expect(sweep.tick).toBe(30);
      expect(watched[0]!.calls).toEqual(['ping@30']);
      vi.advanceTimersByTime(30_000);
      expect(watched[0]!.calls.at(-1)).toBe('close 1001 idle timeout@60');
      sweep.stop();
    });
  });
});
