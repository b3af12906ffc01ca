/**
 * How connections reach the workers. Node ≥ 26.6 can transfer an accepted `net.Socket` to a
 * worker thread: the primary accepts and balances by load. Older Node cannot; on Linux from
 * 22.12 each worker listens on the same port with SO_REUSEPORT and the kernel spreads the
 * connections (by hash, not by load).
 */
export type AcceptMode = 'transfer' | 'reuseport';

const parse = (version: string): [number, number] => {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return [major, minor];
};
const atLeast = (version: string, major: number, minor: number): boolean => {
  const [a, b] = parse(version);
  return a > major || (a === major && b >= minor);
};

/** The mode this Node supports; throws a clear error where shardws cannot run. */
export function acceptModeFor(version: string = process.versions.node, platform: string = process.platform): AcceptMode {
  if (atLeast(version, 26, 6)) return 'transfer';
  const reusePort = platform === 'linux' && (atLeast(version, 23, 1) || (parse(version)[0] === 22 && atLeast(version, 22, 12)));
  if (reusePort) return 'reuseport';
  throw new Error(
    `shardws needs Node >= 26.6 (socket transfer to worker threads), or Node >= 22.12 on Linux (SO_REUSEPORT); this is Node ${version} on ${platform}`,
  );
}
