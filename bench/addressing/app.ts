/**
 * The app of bench:addressing: greets each connection with its id and worker, tags it on
 * `tag:KEY`, and on `burst:{...}` sends COUNT messages of SIZE bytes with `shard.send(id)` to the
 * ids it is given, or `shard.sendTo(key)` to the keys, a thousand per event-loop turn, then says
 * `sent`.
 */
import { defineApp } from '../../src/shared/app.ts';

interface Burst {
  readonly mode: 'id' | 'tag';
  readonly targets: readonly string[];
  readonly count: number;
  readonly size: number;
}

const CHUNK = 1000;

export default defineApp({
  open(ws) {
    ws.send(JSON.stringify({ id: ws.id, worker: ws.shard.id }));
  },

  message(ws, data) {
    const text = data.toString();
    if (text.startsWith('tag:')) {
      ws.tag(text.slice(4));
      ws.send('tagged');
      return;
    }
    if (!text.startsWith('burst:')) return;
    const burst = JSON.parse(text.slice(6)) as Burst;
    const payload = Buffer.alloc(burst.size, 0x61);
    const { shard } = ws;
    let sent = 0;
    const step = (): void => {
      const end = Math.min(burst.count, sent + CHUNK);
      for (; sent < end; sent++) {
        const target = burst.targets[sent % burst.targets.length]!;
        if (burst.mode === 'id') shard.send(target, payload, { binary: true });
        else shard.sendTo(target, payload, { binary: true });
      }
      if (sent < burst.count) setImmediate(step);
      else ws.send('sent');
    };
    step();
  },
});
