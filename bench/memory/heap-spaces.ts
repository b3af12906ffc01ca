/** V8 heap spaces as [committed, used] KiB pairs, the spaces in use only. */
import type { HeapSpaceInfo } from 'node:v8';

export type HeapSpaces = Record<string, readonly [committedKiB: number, usedKiB: number]>;

export function heapSpaces(stats: readonly HeapSpaceInfo[]): HeapSpaces {
  const spaces: HeapSpaces = {};
  for (const s of stats) if (s.space_size > 0) spaces[s.space_name] = [s.space_size >> 10, s.space_used_size >> 10];
  return spaces;
}

/** Committed and used MiB over all spaces. */
export function heapTotals(spaces: HeapSpaces): { committed: number; used: number } {
  let committed = 0;
  let used = 0;
  for (const [c, u] of Object.values(spaces)) {
    committed += c;
    used += u;
  }
  return { committed: committed / 1024, used: used / 1024 };
}
