/**
 * Upstreams for the proxy's unit tests: a raw TCP one that reads each request head and answers as
 * the test scripts it (a 101, a refusal, garbage, or nothing), recording the heads it received;
 * and a ws server with an upstream leg already dialed to it.
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { ServerOptions, WebSocket as WsSocket } from 'ws';
import { computeAcceptKey, generateKey } from '../../src/shared/handshake.ts';
import { dialUpstream } from '../../src/worker/upstream-dial.ts';
import type { DialResult } from '../../src/worker/upstream-dial.ts';

export interface ScriptedUpstream {
  readonly port: number;
  /** Each request head received, up to (not including) its blank line. */
  readonly heads: string[];
  /** Connections that have closed (from either end). */
  closedConnections(): number;
  close(): void;
}

/** Listens on loopback; `answer(head, key)` is written back for each request head, or nothing when it is null. */
export async function scriptedUpstream(answer: ((head: string, key: string) => Buffer | string) | null): Promise<ScriptedUpstream> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  let closed = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => closed++);
    let head = '';
    socket.on('data', (chunk) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      heads.push(head.slice(0, end));
      const key = /\r\nsec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
      if (answer !== null) socket.write(answer(head, key));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    heads,
    closedConnections: () => closed,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** A 101 answering `key`, with `extra` header lines (each ending in CRLF). */
export const switchingProtocols = (key: string, extra = ''): string =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${computeAcceptKey(key)}\r\n${extra}\r\n`;

/** A header's value in a recorded head (the first, case-insensitive), or undefined. */
export const headerOf = (head: string, name: string): string | undefined =>
  head.split('\r\n').slice(1).find((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`))?.slice(name.length + 1).trim();

/**
 * A ws server on loopback and an upstream leg dialed to it (open), with the server's side of that
 * connection; `closers` gets the server's shutdown.
 */
export async function dialedWsUpstream(closers: (() => void)[], options: ServerOptions = {}): Promise<{ dialed: Extract<DialResult, { kind: 'open' }>; peer: Promise<WsSocket> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...options });
  closers.push(() => {
    for (const client of wss.clients) client.terminate();
    wss.close();
  });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const peer = new Promise<WsSocket>((resolve) => wss.once('connection', resolve));
  const port = (wss.address() as AddressInfo).port;
  const key = generateKey();
  const dialed = await dialUpstream({
    url: `ws://127.0.0.1:${port}/`,
    key,
    protocols: [],
    timeoutMs: 2000,
    tls: null,
    headers: { host: `127.0.0.1:${port}`, upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
  });
  if (dialed.kind !== 'open') throw new Error(dialed.reason);
  return { dialed, peer };
}
