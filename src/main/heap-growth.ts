/**
 * The V8 heap growing factor for the server's threads (the `heapGrowingPercent` option).
 *
 * After each full collection V8 lets the old generation grow to the surviving size times a
 * factor before it marks again, and picks the factor from how fast its collections run against
 * how fast the program allocates: fast collections, small factor. A worker compressing at full
 * load (W3) could settle on the small one: its next marking then starts while the old
 * generation is still near its live size, what survives during marking is promoted, and the
 * worker stays in that state, about ten mark-compacts a second for as long as the load lasts
 * (45–52 instead of 37–40 µs of CPU per message; docs/performance.md, "W3's GC mode"). A fixed
 * factor of 4, V8's own maximum, keeps it out of that state; the surviving size and the memory
 * a held connection costs (W5) did not change.
 *
 * Worker threads have no per-isolate setting for it (resourceLimits has none), so this is V8's
 * process-wide `--heap-growing-percent`, set at run time: V8 reads it at every limit it
 * computes, in every isolate of the process, the workers started after it included.
 */
import { setFlagsFromString } from 'node:v8';

const FLAG = '--heap-growing-percent';

/**
 * Whether node itself was started with the flag: then it stays the user's. (NODE_OPTIONS may not
 * carry it: node refuses to start with it there.)
 */
export function heapGrowthGivenToNode(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg));
}

/** Whether this module set the flag (a later server with 0 then gives V8 its own choice back). */
let set = false;

/**
 * Sets V8's heap growing factor to `1 + percent / 100` for this process, unless node was started
 * with its own value. 0: V8's own choice (undoing an earlier server's value in this process).
 * Returns whether a factor of ours is in force.
 */
export function applyHeapGrowth(percent: number): boolean {
  if (heapGrowthGivenToNode()) return false;
  if (percent === 0 && !set) return false;
  // V8 reads 0 as "no fixed factor".
  setFlagsFromString(`${FLAG}=${percent}`);
  set = percent !== 0;
  return set;
}
