import { describe, expect, it } from 'vitest';
import { Counter, ServerCounter, WorkerCounters, closeCounter, recordDeflate } from '../src/shared/worker-counters.ts';

describe('WorkerCounters', () => {
  it('gives each worker its own 32-slot view of one shared buffer, plus a server slot after them', () => {
    const counters = new WorkerCounters(3);
    expect(counters.workers).toBe(3);
    expect(counters.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(counters.buffer.byteLength).toBe(4 * 32 * 8);
    expect(counters.slot(1)).toHaveLength(32);
    expect(counters.server).toHaveLength(32);

    counters.slot(0)[Counter.Connections] = 1;
    counters.slot(1)[Counter.Connections] = 2;
    counters.slot(2)[Counter.Connections] = 3;
    counters.server[ServerCounter.Restarts] = 7;
    expect([0, 1, 2].map((w) => counters.get(w, Counter.Connections))).toEqual([1, 2, 3]);
    // The server slot is not a fourth worker's, and it does not alias any worker's.
    expect(counters.get(3, ServerCounter.Restarts)).toBe(7);
    expect(counters.get(2, Counter.Connections)).toBe(3);
  });

  it('reads what another thread wrote: a second instance over the same buffer sees the same counts', () => {
    const primary = new WorkerCounters(2);
    const worker = new WorkerCounters(primary.buffer);
    expect(worker.workers).toBe(2);
    worker.slot(1)[Counter.BytesIn] = 2 ** 40 + 1; // exact past 2^32
    worker.server[ServerCounter.Refused] = 4;
    expect(primary.get(1, Counter.BytesIn)).toBe(2 ** 40 + 1);
    expect(primary.server[ServerCounter.Refused]).toBe(4);
  });

  it('counts open connections as connections plus handshakes across every worker, not the server slot', () => {
    const counters = new WorkerCounters(2);
    counters.slot(0)[Counter.Connections] = 5;
    counters.slot(0)[Counter.Handshakes] = 2;
    counters.slot(1)[Counter.Connections] = 10;
    counters.slot(1)[Counter.BufferedBytes] = 1_000_000;
    counters.server[Counter.Connections] = 99;
    expect(counters.openConnections()).toBe(17);
  });

  it('resets only the gauges of one worker, keeping its totals and the other workers', () => {
    const counters = new WorkerCounters(2);
    for (const worker of [0, 1]) {
      const slot = counters.slot(worker);
      for (let i = 0; i < slot.length; i++) slot[i] = 100 + i;
    }
    counters.resetGauges(1);
    for (const gauge of [Counter.Connections, Counter.Handshakes, Counter.BufferedBytes, Counter.SocketsAdopted, Counter.Heartbeat]) {
      expect(counters.get(1, gauge)).toBe(0);
      expect(counters.get(0, gauge)).toBe(100 + gauge);
    }
    for (const total of [Counter.MessagesIn, Counter.BytesOut, Counter.HandshakesTotal, Counter.Closes1000, Counter.Refused, Counter.DeflateBytesIn]) {
      expect(counters.get(1, total)).toBe(100 + total);
    }
  });

  it('records both sides of a deflate, accumulating', () => {
    const counters = new WorkerCounters(1);
    const slot = counters.slot(0);
    recordDeflate(slot, 1000, 120);
    recordDeflate(slot, 500, 80);
    expect(counters.get(0, Counter.DeflateBytesIn)).toBe(1500);
    expect(counters.get(0, Counter.DeflateBytesOut)).toBe(200);
  });

  it.each([
    [1000, Counter.Closes1000],
    [1001, Counter.Closes1001],
    [1002, Counter.Closes1002],
    [1003, Counter.Closes1003],
    [1006, Counter.Closes1006],
    [1007, Counter.Closes1007],
    [1008, Counter.Closes1008],
    [1009, Counter.Closes1009],
    [1011, Counter.Closes1011],
    [1004, Counter.ClosesOther],
    [1005, Counter.ClosesOther],
    [1010, Counter.ClosesOther],
    [1012, Counter.ClosesOther],
    [3000, Counter.ClosesOther],
    [4999, Counter.ClosesOther],
    [0, Counter.ClosesOther],
  ])('counts close code %i in its own counter', (code, counter) => {
    expect(closeCounter(code)).toBe(counter);
  });

  it('gives every counter its own slot index, all inside the 32 slots', () => {
    const indexes = Object.values(Counter);
    expect(new Set(indexes).size).toBe(indexes.length);
    for (const index of indexes) {
      expect(Number.isInteger(index)).toBe(true);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(32);
    }
  });

  it('shows one worker in the stats shape, and every worker in allStats', () => {
    const counters = new WorkerCounters(2);
    const slot = counters.slot(1);
    const values: Record<string, number> = {
      connections: 1,
      handshakes: 2,
      bufferedBytes: 3,
      messagesIn: 4,
      messagesOut: 5,
      bytesIn: 6,
      bytesOut: 7,
      backpressureEvents: 8,
      drops: 9,
    };
    slot[Counter.Connections] = 1;
    slot[Counter.Handshakes] = 2;
    slot[Counter.BufferedBytes] = 3;
    slot[Counter.MessagesIn] = 4;
    slot[Counter.MessagesOut] = 5;
    slot[Counter.BytesIn] = 6;
    slot[Counter.BytesOut] = 7;
    slot[Counter.BackpressureEvents] = 8;
    slot[Counter.Drops] = 9;
    expect(counters.stats(1)).toEqual({ worker: 1, ...values });
    const zero = Object.fromEntries(Object.keys(values).map((key) => [key, 0]));
    expect(counters.allStats()).toEqual([{ worker: 0, ...zero }, { worker: 1, ...values }]);
  });
});
