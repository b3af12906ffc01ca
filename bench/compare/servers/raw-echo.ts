/**
 * A raw TCP echo: `node raw-echo.ts --port N`. No HTTP, no WebSocket: every byte comes back as it
 * arrived. Driven by `shardws bench --raw-echo`, which skips the handshake and reads back its
 * own masked client frames, it measures the ceiling of Node socket I/O on this machine: what
 * any WebSocket server in Node pays before parsing a single frame.
 */
import { createServer } from 'node:net';

const at = process.argv.indexOf('--port');
const port = at >= 0 ? Number(process.argv[at + 1]) : 8080;
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
}).listen(port, '127.0.0.1');
