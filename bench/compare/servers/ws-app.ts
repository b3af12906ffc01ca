/**
 * The `ws` comparison server: /echo echoes every message with its type, /broadcast relays each
 * message to every other /broadcast client (the loop a ws user writes). With `deflate`, ws's
 * permessage-deflate is set to shardws's defaults (zlib level 1, threshold 128 bytes) so the
 * comparison is of the runtimes, not of compression levels; ws keeps its own default of
 * per-connection context in the server's direction.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';

export function startWsServer(port: number, deflate: boolean): Server {
  const perMessageDeflate = deflate ? { zlibDeflateOptions: { level: 1 }, threshold: 128 } : false;
  const echo = new WebSocketServer({ noServer: true, perMessageDeflate });
  const broadcast = new WebSocketServer({ noServer: true, perMessageDeflate });
  echo.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  });
  broadcast.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      for (const client of broadcast.clients) {
        if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data as Buffer, { binary: isBinary });
      }
    });
  });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const target = path === '/echo' ? echo : path === '/broadcast' ? broadcast : null;
    if (target === null) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
  });
  server.listen(port, '127.0.0.1');
  return server;
}

/** `--port N`, `--deflate` from argv. */
export function serverArgs(argv: readonly string[]): { port: number; deflate: boolean } {
  const at = argv.indexOf('--port');
  return { port: at >= 0 ? Number(argv[at + 1]) : 8080, deflate: argv.includes('--deflate') };
}

/** Exit on SIGTERM/SIGINT through process.exit, so --cpu-prof writes its profile. */
export function exitOnSignals(): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
}
