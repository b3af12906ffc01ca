/**
 * The shape every microbenchmark area exports: a list of cases, each one row of the table, that
 * times our implementation against a baseline (usually ws) doing the same work on the same input.
 */

/** One timed implementation. The runner times each Subject once, even when several rows share it. */
export interface Subject {
  /** Who does the work, as printed in the table ("ws Receiver", "bufferutil", "ours pool"). */
  readonly label: string;
  /** Does `batch` operations; may return a promise (then the await is timed too). */
  readonly fn: () => unknown;
  /** Operations per fn call, for work too short to time one at a time. Default 1. */
  readonly batch?: number;
  /** Whether fn returns a promise (told to tinybench, which would otherwise call fn once to find out). */
  readonly async?: boolean;
  /** Untimed per-call setup (e.g. restoring an input that the last call unmasked in place). */
  readonly beforeEach?: () => void;
}

export interface BenchCase {
  /** The row name; it says what one operation is. `--filter` matches it. */
  readonly name: string;
  readonly ours: Subject;
  /** What ours is measured against; null for a row with nothing to compare. */
  readonly baseline: Subject | null;
  /** Input bytes per operation, for the MiB/s column. */
  readonly bytes?: number;
  /**
   * Runs both subjects' work once, untimed, and throws unless they produce the same result.
   * Must leave the inputs as the timed calls expect them.
   */
  verify(): void | Promise<void>;
}

/** Throws with `what` unless `a` and `b` hold the same bytes. */
export function assertSameBytes(what: string, a: Uint8Array, b: Uint8Array): void {
  if (!Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)) {
    throw new Error(`${what}: outputs differ (${a.length} vs ${b.length} bytes)`);
  }
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}
