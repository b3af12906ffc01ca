/**
 * One microsecond clock for every thread of the generator. performance.now() is cheap but each
 * worker thread has its own time origin; process.hrtime is the process's monotonic clock, the
 * same in every thread. So each thread reads both once and afterwards adds the offset: a
 * broadcast stamped on the publisher's thread is timed on a subscriber's thread by one clock.
 */
import { performance } from 'node:perf_hooks';

const OFFSET_MICROS = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;

/** Monotonic microseconds, comparable across the generator's threads. */
export function nowMicros(): number {
  return performance.now() * 1000 + OFFSET_MICROS;
}

/**
 * When this thread's current socket read arrived (set by the connection before it parses the
 * read): every message in one read arrived at once, so one clock reading serves for their
 * latencies and for stamping the replies they trigger.
 */
export const arrival = { micros: 0 };
