import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  Counter,
  HANDSHAKE_SECONDS,
  MESSAGE_IN_BYTES,
  MESSAGE_OUT_BYTES,
  ServerCounter,
  WorkerCounters,
  closeCounter,
  recordDeflate,
  recordSize,
  recordValue,
} from '../src/shared/worker-counters.ts';

describe('WorkerCounters', () => {
  it('gives each worker its own 96-slot view of one shared buffer, plus a server slot after them', () => {
    const counters = new WorkerCounters(3);
    expect(counters.workers).toBe(3);
    expect(counters.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(counters.buffer.byteLength).toBe(4 * 96 * 8);
    expect(counters.slot(1)).toHaveLength(96);
    expect(counters.server).toHaveLength(96);

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

  it('gives every counter and every histogram slot its own index, all inside the 96 slots', () => {
    const used = Object.values(Counter).filter((index) => ![Counter.HandshakeSeconds, Counter.MessageInBytes, Counter.MessageOutBytes].includes(index as never)) as number[];
    for (const { at, bounds } of [HANDSHAKE_SECONDS, MESSAGE_IN_BYTES, MESSAGE_OUT_BYTES]) {
      // Buckets, the +Inf bucket, the sum.
      for (let i = 0; i < bounds.length + 2; i++) used.push(at + i);
    }
    expect(new Set(used).size).toBe(used.length);
    for (const index of used) {
      expect(Number.isInteger(index)).toBe(true);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(96);
    }
    // The primary's thread sample shares the server slot with ServerCounter: no overlap.
    expect(Math.max(...Object.values(ServerCounter))).toBeLessThan(Counter.LoopDelayMean);
  });

  it('counts sizes into power-of-4 buckets from 64 B, computed as recordValue would search them', () => {
    const counters = new WorkerCounters(1);
    const slot = counters.slot(0);
    const bucketOf = (size: number): number => {
      const before = [...slot];
      recordSize(slot, Counter.MessageInBytes, size);
      return slot.findIndex((value, i) => value !== before[i]) - Counter.MessageInBytes;
    };
    expect([0, 1, 64, 65, 256, 257, 1024, 1025, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1, 2 ** 31 - 1].map(bucketOf)).toEqual([0, 0, 0, 1, 1, 2, 2, 3, 9, 10, 10]);
    const reference = new WorkerCounters(1);
    const sizes = [0, 7, 64, 100, 4096, 5000, 70_000, 1_000_000, 20_000_000];
    for (const size of sizes) recordValue(reference.slot(0), MESSAGE_OUT_BYTES, size);
    const computed = new WorkerCounters(1);
    for (const size of sizes) recordSize(computed.slot(0), Counter.MessageOutBytes, size);
    expect(computed.histogram(0, MESSAGE_OUT_BYTES)).toEqual(reference.histogram(0, MESSAGE_OUT_BYTES));
  });

  it('reads a histogram back cumulative, the last bucket being the count, with the sum', () => {
    const counters = new WorkerCounters(2);
    for (const seconds of [0.0001, 0.003, 0.003, 0.2, 60]) recordValue(counters.slot(1), HANDSHAKE_SECONDS, seconds);
    const { cumulative, sum } = counters.histogram(1, HANDSHAKE_SECONDS);
    expect(cumulative).toHaveLength(HANDSHAKE_SECONDS.bounds.length + 1);
    expect(cumulative[0]).toBe(1); // <= 0.0005
    expect(cumulative[HANDSHAKE_SECONDS.bounds.indexOf(0.005)]).toBe(3);
    expect(cumulative[HANDSHAKE_SECONDS.bounds.indexOf(0.25)]).toBe(4);
    expect(cumulative.at(-2)).toBe(4); // <= 10 s
    expect(cumulative.at(-1)).toBe(5); // +Inf
    expect(sum).toBeCloseTo(60.2061, 6);
    expect(counters.histogram(0, HANDSHAKE_SECONDS).cumulative.at(-1)).toBe(0);
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

describe('WorkerCounters.reserveWithin (SO_REUSEPORT admission)', () => {
  it('counts a handshake only below the limit, and says whether it did', () => {
    const counters = new WorkerCounters(2);
    counters.slot(1)[Counter.Connections] = 2;
    expect(counters.reserveWithin(3, counters.slot(0))).toBe(true);
    expect(counters.get(0, Counter.Handshakes)).toBe(1);
    expect(counters.reserveWithin(3, counters.slot(0))).toBe(false);
    expect(counters.get(0, Counter.Handshakes)).toBe(1);
    expect(counters.openConnections()).toBe(3);
  });

  it('admits one thread at a time at maxConnections 1, with threads racing for it', async () => {
    const threads = 3;
    const counters = new WorkerCounters(threads);
    const start = new SharedArrayBuffer(4);
    const racers = Array.from(
      { length: threads },
      (_, worker) => new Worker(new URL('./fixtures/admission-racer.ts', import.meta.url), { workerData: { buffer: counters.buffer, worker, rounds: 200_000, start } }),
    );
    const results = racers.map(
      (racer) =>
        new Promise<{ admitted: number; overAdmitted: number }>((resolve, reject) => {
          racer.once('message', resolve);
          racer.once('error', reject);
        }),
    );
    await Promise.all(racers.map((racer) => new Promise((resolve) => racer.once('online', resolve))));
    Atomics.store(new Int32Array(start), 0, 1);
    Atomics.notify(new Int32Array(start), 0);
    const outcomes = await Promise.all(results);
    await Promise.all(racers.map((racer) => racer.terminate()));
    // Without the lock two threads that both read 0 both get in (thousands of times per run).
    expect(outcomes.map((o) => o.overAdmitted)).toEqual(new Array(threads).fill(0));
    expect(outcomes.every((o) => o.admitted > 0)).toBe(true);
    expect(counters.openConnections()).toBe(0);
  });
});
