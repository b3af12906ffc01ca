/**
 * A shardws server in a process of its own, for the scripts that measure one (fuzz, soak): its
 * RSS and descriptors are then the server's alone, not the load generator's. Options come as
 * JSON in the first argument; it prints JSON lines on stdout: `{"type":"listening","port"}`,
 * then a `sample` every `sampleMs` (and a last one after SIGTERM closed the server), mixed with
 * the server's own log lines.
 *
 *   node scripts/lib/server-child.ts '{"workers":2,"deflate":"shared","sampleMs":1000}'
 */
import { existsSync, readdirSync } from 'node:fs';
import { listen } from '../../src/main/listen.ts';
import type { ListenOptions, ShardServer } from '../../src/main/listen.ts';
import type { ServerSample } from './server-process.ts';

const { sampleMs = 1000, ...options } = JSON.parse(process.argv[2] ?? '{}') as ListenOptions & { sampleMs?: number };
const canCountFds = existsSync('/proc/self/fd');

function sample(server: ShardServer): ServerSample {
  const stats = server.stats();
  const sum = (key: 'handshakes' | 'messagesIn' | 'messagesOut' | 'bytesIn' | 'bytesOut' | 'drops'): number =>
    stats.workers.reduce((total, w) => total + w[key], 0);
  return {
    type: 'sample',
    at: Date.now(),
    rss: process.memoryUsage.rss(),
    fds: canCountFds ? readdirSync('/proc/self/fd').length : null,
    restarts: stats.restarts,
    connections: stats.connections,
    handshakes: sum('handshakes'),
    messagesIn: sum('messagesIn'),
    messagesOut: sum('messagesOut'),
    bytesIn: sum('bytesIn'),
    bytesOut: sum('bytesOut'),
    drops: sum('drops'),
    refused: stats.refused,
    pool: stats.pool,
  };
}

const print = (line: object): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

const server = await listen({ port: 0, host: '127.0.0.1', logLevel: 'error', shutdownGrace: 2, ...options });
print({ type: 'listening', port: server.address().port, pid: process.pid });
const timer = setInterval(() => print(sample(server)), sampleMs);
let closing = false;
process.on('SIGTERM', () => {
  if (closing) return;
  closing = true;
  clearInterval(timer);
  const last = sample(server);
  void server.close().then(() => {
    print({ ...last, type: 'final' });
    process.exit(0);
  });
});
