/**
 * A raw TCP "upstream" for the proxy's unit tests: it reads each request head and answers as the
 * test scripts it (a 101, a refusal, garbage, or nothing), recording the heads it received.
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { computeAcceptKey } from '../../src/shared/handshake.ts';

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
