/**
 * An existing `(req, res)` handler served by every worker beside the WebSockets: the shape an
 * Express app (`const app = express()`) or a Koa app (`app.callback()`) has, so either drops in
 * where `site` is. Here `site` is a small hand-written one, so the example runs without them:
 * a page at /, JSON at /api/time, a body echoed at POST /api/echo. WebSocket upgrades on /ws
 * get an echo; any other path upgrades too and is told which worker it reached.
 *
 *   npx shardws serve examples/http-handler/app.ts --port 9001 --workers 2
 *   curl localhost:9001/api/time
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { defineApp } from '../../src/index.ts';

const PAGE = `<!doctype html><meta charset="utf-8"><title>shardws + (req, res)</title>
<p>Served by a plain (req, res) handler on a shardws worker. <a href="/api/time">/api/time</a></p>`;

/** The app's own HTTP handler, as an Express or Koa app would be. */
function site(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    return;
  }
  if (req.method === 'GET' && path === '/api/time') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ now: new Date().toISOString() }));
    return;
  }
  if (req.method === 'POST' && path === '/api/echo') {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' }).end(Buffer.concat(chunks)));
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
}

export default defineApp({
  open(ws) {
    ws.send(JSON.stringify({ worker: ws.shard.id }));
  },
  message(ws, data, isBinary) {
    ws.send(data, { binary: isBinary });
  },
  // Every worker answers plain HTTP through the same handler; a header says which one did.
  http(req, res, shard) {
    res.setHeader('x-shardws-worker', String(shard.id));
    site(req, res);
  },
});
