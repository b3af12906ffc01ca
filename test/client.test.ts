/** The shardws client against ws servers: the close ordering and the connecting-close cases. */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { WebSocket } from '../src/client/websocket.ts';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function recordingServer(perMessageDeflate: boolean | object): Promise<{ url: string; received: string[]; closes: number[]; connections: () => number }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate });
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  const received: string[] = [];
  const closes: number[] = [];
  server.on('connection', (socket) => {
    socket.on('message', (data) => received.push(String(data)));
    socket.on('close', (code) => closes.push(code));
  });
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, received, closes, connections: () => server.clients.size };
}

describe('shardws client', () => {
  it('sends every message given before close(), compressed off-thread ones included, then the close', async () => {
    // Dedicated deflate (context takeover): the client compresses on zlib's pool, asynchronously.
    const server = await recordingServer({ threshold: 0 });
    const ws = new WebSocket(server.url, [], { perMessageDeflate: { clientMaxWindowBits: true } });
    await new Promise<void>((resolve) => ws.addEventListener('open', () => resolve()));
    const big = 'x'.repeat(64 * 1024); // above the synchronous limit as well
    ws.send('first');
    ws.send(big);
    ws.send('last');
    ws.close(1000, 'done');
    const closed = await new Promise<{ code: number; wasClean: boolean }>((resolve) => {
      ws.onclose = (e) => resolve(e);
    });
    expect(closed).toMatchObject({ code: 1000, wasClean: true });
    for (let i = 0; i < 100 && server.closes.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(server.received).toEqual(['first', big, 'last']);
    expect(server.closes).toEqual([1000]);
  });

  it('close() while connecting never opens and leaves no connection behind', async () => {
    const server = await recordingServer(false);
    const ws = new WebSocket(server.url);
    const events: string[] = [];
    ws.onopen = () => events.push('open');
    ws.onclose = (e) => events.push(`close ${e.code}`);
    ws.onerror = () => events.push('error');
    ws.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(events).toEqual(['error', 'close 1006']);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
    expect(server.connections()).toBe(0);
  });
});
