/**
 * Resource probes for the robustness suites: the server's workers are threads of the test
 * process, so this process's RSS and open descriptors are the server's (plus the clients').
 */
import { existsSync, readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const MIB = 1024 * 1024;

/** Whether descriptors can be counted (Linux). */
export const hasProcFd = existsSync('/proc/self/fd');

/** Open file descriptors of this process (workers included). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Open descriptors once the count has stopped moving (sockets closing a moment after their peers). */
export async function settledFds(): Promise<number> {
  let last = openFds();
  for (let i = 0; i < 40; i++) {
    await sleep(50);
    const now = openFds();
    if (now === last) return now;
    last = now;
  }
  return last;
}

export function rss(): number {
  return process.memoryUsage.rss();
}

/**
 * Exposes `gc` to this thread and to every worker thread started from now on (V8's flag is read
 * when an isolate is created), without restarting vitest with --expose-gc. Returns this thread's
 * collector, or null when the flag cannot be set.
 */
export function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
}

/** Samples RSS every few milliseconds until stopped; reports the start, the peak and the end. */
export class RssSampler {
  readonly start = rss();
  max = this.start;
  readonly #timer: NodeJS.Timeout;

  constructor(intervalMs = 5) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): number {
    const now = rss();
    if (now > this.max) this.max = now;
    return now;
  }

  stop(): { start: number; max: number; end: number; growth: number } {
    clearInterval(this.#timer);
    const end = this.sample();
    return { start: this.start, max: this.max, end, growth: this.max - this.start };
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
