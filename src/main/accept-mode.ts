import type { AcceptChoice } from '../shared/config.ts';

/**
 * How connections reach the workers. Node ≥ 26.6 can transfer an accepted `net.Socket` to a
 * worker thread: the primary accepts and balances by load. On Linux from 22.12 each worker can
 * instead listen on the same port with SO_REUSEPORT and the kernel spreads the connections (by
 * hash, not by load): the only way on older Node, and a choice (`accept: 'reuseport'`) on newer.
 */
export type AcceptMode = Exclude<AcceptChoice, 'auto'>;

const parse = (version: string): [number, number] => {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return [major, minor];
};
const atLeast = (version: string, major: number, minor: number): boolean => {
  const [a, b] = parse(version);
  return a > major || (a === major && b >= minor);
};

/**
 * The mode for the `accept` option on this Node and platform; throws a clear error where the
 * chosen mode, or shardws at all, cannot run.
 */
export function acceptModeFor(choice: AcceptChoice = 'auto', version: string = process.versions.node, platform: string = process.platform): AcceptMode {
  const transfer = atLeast(version, 26, 6);
  // Only Linux spreads connections over the listeners of one port; elsewhere one would get all.
  const reusePort = platform === 'linux' && (atLeast(version, 23, 1) || (parse(version)[0] === 22 && atLeast(version, 22, 12)));
  if (choice === 'transfer' && !transfer) {
    throw new Error(`accept: 'transfer' needs Node >= 26.6 (socket transfer to worker threads); this is Node ${version}`);
  }
  if (choice === 'reuseport' && !reusePort) {
    throw new Error(`accept: 'reuseport' needs Linux and Node >= 22.12 (SO_REUSEPORT spread over the listeners); this is Node ${version} on ${platform}`);
  }
  if (choice !== 'auto') return choice;
  if (transfer) return 'transfer';
  if (reusePort) return 'reuseport';
  throw new Error(
    `shardws needs Node >= 26.6 (socket transfer to worker threads), or Node >= 22.12 on Linux (SO_REUSEPORT); this is Node ${version} on ${platform}`,
  );
}
