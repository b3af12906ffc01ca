/**
 * The server's side of the picture, read from Linux's /proc: resident memory (VmRSS) and CPU
 * time (utime + stime) of a process and all its descendants, so a Node cluster (a primary and
 * its forked workers) counts as one server. Elsewhere these read as null.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat times: USER_HZ, 100 on every mainstream Linux build. */
const USER_HZ = 100;

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The pids and every descendant (through /proc/PID/task/TID/children). */
export function processTree(pids: readonly number[]): number[] {
  const seen = new Set<number>();
  const queue = [...pids];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      const children = read(`/proc/${pid}/task/${tid}/children`);
      if (children === null) continue;
      for (const child of children.split(' ')) if (child.trim() !== '') queue.push(Number(child));
    }
  }
  return [...seen];
}

/** Resident set size in KiB, summed over the processes; null when none could be read. */
export function residentKiB(pids: readonly number[]): number | null {
  let total = 0;
  let found = false;
  for (const pid of processTree(pids)) {
    const status = read(`/proc/${pid}/status`);
    const line = status?.split('\n').find((l) => l.startsWith('VmRSS:'));
    if (line === undefined) continue;
    total += Number.parseInt(line.slice(6).trim(), 10);
    found = true;
  }
  return found ? total : null;
}

/** CPU time in microseconds (user + system), summed over the processes; null when unreadable. */
export function cpuMicros(pids: readonly number[]): number | null {
  let total = 0;
  let found = false;
  for (const pid of processTree(pids)) {
    const stat = read(`/proc/${pid}/stat`);
    if (stat === null) continue;
    // Fields after the parenthesised command name (which may hold spaces): utime and stime
    // are fields 14 and 15 of the line, 12th and 13th after ") ".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / USER_HZ;
    found = true;
  }
  return found ? total : null;
}

/** The soft limit on open files of this process, or null when /proc/self/limits is unreadable. */
export function openFileLimit(): number | null {
  const limits = read('/proc/self/limits');
  const line = limits?.split('\n').find((l) => l.startsWith('Max open files'));
  if (line === undefined) return null;
  const soft = line.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft === 'unlimited' ? Infinity : Number(soft);
}
