import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { ELDHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { Counter } from '../shared/worker-counters.ts';

/** Event-loop delay is reported over windows of this length (the last completed one). */
const WINDOW_MS = 5000;
/** The delay monitor's sampling interval: finer catches shorter stalls, at a timer wake-up each. */
const RESOLUTION_MS = 20;

/**
 * ThreadSampler writes what a thread's own runtime says about it into its counter slot, where
 * the metrics endpoint reads it: event-loop delay (a busy or blocked worker shows there first),
 * event-loop busy time and CPU time (accumulated across the threads a slot has had, as the
 * message counters are), and the V8 heap. Node's defaults describe one thread; a sharded server
 * needs each thread's. Called on the thread's heartbeat: nothing here runs per message.
 */
export class ThreadSampler {
  readonly #slot: Float64Array;
  readonly #delay: ELDHistogram;
  readonly #base: { busy: number; user: number; system: number };
  readonly #windowMs: number;
  #windowStart = performance.now();

  constructor(slot: Float64Array, windowMs = WINDOW_MS) {
    this.#slot = slot;
    this.#windowMs = windowMs;
    // What the slot's earlier threads used stays counted: a replacement adds its own on top.
    this.#base = { busy: slot[Counter.LoopBusySeconds]!, user: slot[Counter.CpuUserSeconds]!, system: slot[Counter.CpuSystemSeconds]! };
    this.#delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#delay.enable();
  }

  sample(now = performance.now()): void {
    const slot = this.#slot;
    slot[Counter.LoopBusySeconds] = this.#base.busy + performance.eventLoopUtilization().active / 1000;
    // process.threadCpuUsage: this thread's CPU, not the process's (Node >= 23.9; absent before).
    const cpu = process.threadCpuUsage?.();
    if (cpu !== undefined) {
      slot[Counter.CpuUserSeconds] = this.#base.user + cpu.user / 1e6;
      slot[Counter.CpuSystemSeconds] = this.#base.system + cpu.system / 1e6;
    }
    const heap = getHeapStatistics();
    slot[Counter.HeapUsedBytes] = heap.used_heap_size;
    slot[Counter.HeapTotalBytes] = heap.total_heap_size;
    if (now - this.#windowStart < this.#windowMs) return;
    // A window is complete: publish its delay figures and start the next. The monitor records the
    // time between its timer's runs, the resolution included: the delay is what exceeds it.
    const delay = this.#delay;
    const seconds = (ns: number): number => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000 : 0);
    slot[Counter.LoopDelayMean] = seconds(delay.mean);
    slot[Counter.LoopDelayP50] = seconds(delay.percentile(50));
    slot[Counter.LoopDelayP99] = seconds(delay.percentile(99));
    slot[Counter.LoopDelayMax] = seconds(delay.max);
    delay.reset();
    this.#windowStart = now;
  }

  stop(): void {
    this.#delay.disable();
  }
}
