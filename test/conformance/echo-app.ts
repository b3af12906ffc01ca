/**
 * Echo app for the conformance runs over compression settings and for the streaming send:
 * `/echo` echoes each message with ws.send; `/stream?piece=N` echoes it with ws.sendFragment
 * in pieces of N bytes (the last possibly shorter; an empty message is one empty piece), so
 * the fuzzer, which checks every frame, judges the fragmented (and compressed) messages it makes.
 */
import { defineApp } from '../../src/shared/app.ts';

export default defineApp<{ piece: number }>({
  upgrade(req) {
    const url = new URL(req.url, 'http://localhost');
    return { data: { piece: url.pathname === '/stream' ? Number(url.searchParams.get('piece') ?? 4096) : 0 } };
  },

  message(ws, data, isBinary) {
    const piece = ws.data.piece;
    if (piece === 0) {
      ws.send(data, { binary: isBinary });
      return;
    }
    let at = 0;
    do {
      const end = Math.min(at + piece, data.length);
      ws.sendFragment(data.subarray(at, end), { fin: end === data.length, binary: isBinary });
      at = end;
    } while (at < data.length);
  },
});
