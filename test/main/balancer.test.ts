import { describe, expect, it } from 'vitest';
import { LeastLoadedBalancer } from '../../src/main/balancer.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';

const all = (): boolean => true;

/** Picks `n` times, recording each pick with `sent` as listen() does. */
function pickAndSend(balancer: LeastLoadedBalancer, n: number, available: (worker: number) => boolean = all): number[] {
  const picks: number[] = [];
  for (let i = 0; i < n; i++) {
    const worker = balancer.pick(available);
    picks.push(worker);
    if (worker >= 0) balancer.sent(worker);
  }
  return picks;
}

describe('LeastLoadedBalancer', () => {
  it('weighs connections, handshakes and buffered bytes (64 KiB per connection)', () => {
    const counters = new WorkerCounters(2);
    const balancer = new LeastLoadedBalancer(counters);
    counters.slot(0)[Counter.Connections] = 3;
    counters.slot(0)[Counter.Handshakes] = 2;
    counters.slot(0)[Counter.BufferedBytes] = 96 * 1024;
    expect(balancer.load(0)).toBe(6.5);
    expect(balancer.load(1)).toBe(0);
    // Totals do not count as load.
    counters.slot(1)[Counter.MessagesIn] = 1e6;
    counters.slot(1)[Counter.BytesOut] = 1e9;
    counters.slot(1)[Counter.HandshakesTotal] = 1e6;
    expect(balancer.load(1)).toBe(0);
  });

  it('picks the worker with the least load', () => {
    const counters = new WorkerCounters(3);
    const balancer = new LeastLoadedBalancer(counters);
    counters.slot(0)[Counter.Connections] = 10;
    counters.slot(1)[Counter.Connections] = 4;
    counters.slot(2)[Counter.Connections] = 7;
    expect(balancer.pick(all)).toBe(1);
    // Handshakes in progress count like connections.
    counters.slot(1)[Counter.Handshakes] = 5;
    expect(balancer.pick(all)).toBe(2);
    // A worker with few connections but a large write backlog is not the least loaded.
    counters.slot(2)[Counter.BufferedBytes] = 4 * 64 * 1024;
    expect(balancer.load(2)).toBe(11);
    expect(balancer.pick(all)).toBe(1);
  });

  it('goes round-robin among equally loaded workers', () => {
    const counters = new WorkerCounters(3);
    const balancer = new LeastLoadedBalancer(counters);
    // Without `sent`, loads stay equal: the tie-break alone spreads the picks.
    expect([0, 1, 2, 3, 4, 5].map(() => balancer.pick(all))).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('round-robins only among the tied least loaded', () => {
    const counters = new WorkerCounters(4);
    const balancer = new LeastLoadedBalancer(counters);
    counters.slot(1)[Counter.Connections] = 1;
    counters.slot(3)[Counter.Connections] = 1;
    expect([0, 1, 2, 3].map(() => balancer.pick(all))).toEqual([0, 2, 0, 2]);
  });

  it('counts sockets sent but not yet adopted, so a burst spreads over the workers', () => {
    const counters = new WorkerCounters(2);
    const balancer = new LeastLoadedBalancer(counters);
    counters.slot(1)[Counter.Connections] = 2;
    // Worker 0 looks idle, but after two sockets sent to it the load is even.
    expect(pickAndSend(balancer, 6)).toEqual([0, 0, 1, 0, 1, 0]);
    expect(balancer.inFlight(0)).toBe(4);
    expect(balancer.inFlight(1)).toBe(2);
    expect(balancer.load(0)).toBe(4);
    expect(balancer.load(1)).toBe(4);
  });

  it('stops counting a socket in flight once the worker adopts it (and never goes negative)', () => {
    const counters = new WorkerCounters(1);
    const balancer = new LeastLoadedBalancer(counters);
    balancer.sent(0);
    balancer.sent(0);
    balancer.sent(0);
    expect(balancer.inFlight(0)).toBe(3);
    // The worker adopted two: they are connections (or handshakes) now, counted there instead.
    counters.slot(0)[Counter.SocketsAdopted] = 2;
    counters.slot(0)[Counter.Handshakes] = 2;
    expect(balancer.inFlight(0)).toBe(1);
    expect(balancer.load(0)).toBe(3);
    counters.slot(0)[Counter.SocketsAdopted] = 5;
    expect(balancer.inFlight(0)).toBe(0);
  });

  it('counts a replacement worker from zero after reset', () => {
    const counters = new WorkerCounters(2);
    const balancer = new LeastLoadedBalancer(counters);
    pickAndSend(balancer, 4);
    expect(balancer.inFlight(0)).toBe(2);
    expect(balancer.inFlight(1)).toBe(2);
    // Worker 0 died and its counters restart from zero (resetGauges), as does what was sent to it.
    counters.resetGauges(0);
    balancer.reset(0);
    expect(balancer.inFlight(0)).toBe(0);
    expect(balancer.inFlight(1)).toBe(2);
    counters.slot(0)[Counter.SocketsAdopted] = 1;
    balancer.sent(0);
    balancer.sent(0);
    expect(balancer.inFlight(0)).toBe(1);
  });

  it('skips workers that are not available, even the least loaded', () => {
    const counters = new WorkerCounters(3);
    const balancer = new LeastLoadedBalancer(counters);
    counters.slot(0)[Counter.Connections] = 5;
    counters.slot(2)[Counter.Connections] = 9;
    const asked: number[] = [];
    const notOne = (worker: number): boolean => {
      asked.push(worker);
      return worker !== 1;
    };
    expect(balancer.pick(notOne)).toBe(0);
    expect(asked.sort()).toEqual([0, 1, 2]);
    expect(pickAndSend(balancer, 8, notOne)).not.toContain(1);
  });

  it('answers -1 when no worker is available, and then picks normally again', () => {
    const counters = new WorkerCounters(2);
    const balancer = new LeastLoadedBalancer(counters);
    expect(balancer.pick(() => false)).toBe(-1);
    expect(balancer.pick(() => false)).toBe(-1);
    expect(balancer.pick(all)).toBe(0);
    expect(new LeastLoadedBalancer(new WorkerCounters(0)).pick(all)).toBe(-1);
  });
});
