/**
 * A live dashboard feed: thousands of subscribers get a tick of metrics ten times a second.
 * One worker produces the feed; each tick is framed (and compressed, in shared mode) once and
 * written to every subscriber on every worker.
 *
 *   npm run example:dashboard   (ws://localhost:9001/feed)
 *
 * In your own project: `import { defineApp } from 'shardws'`.
 */
import { defineApp } from '../../src/index.ts';

const TICK_MS = 100;
let timer: NodeJS.Timeout | null = null;
let sequence = 0;

export default defineApp<{ readonly since: number }>({
  start(shard) {
    if (shard.id !== 0) return;
    timer = setInterval(() => {
      const workers = shard.stats();
      shard.publish(
        'ticks',
        JSON.stringify({
          seq: ++sequence,
          at: Date.now(),
          connections: workers.reduce((sum, w) => sum + w.connections, 0),
          perWorker: workers.map((w) => w.connections),
          load: Math.round(50 + 40 * Math.sin(sequence / 20)),
        }),
      );
    }, TICK_MS);
  },

  stop() {
    if (timer !== null) clearInterval(timer);
  },

  upgrade(req) {
    if (new URL(req.url, 'http://localhost').pathname !== '/feed') return { reject: 404, message: 'the feed is at /feed' };
    return { data: { since: Date.now() } };
  },

  open(ws) {
    ws.subscribe('ticks');
  },

  message(ws) {
    // The feed is one-way; a client message is a protocol misuse.
    ws.close(1008, 'this feed is read-only');
  },
});
