import { describe, it, expect, afterEach } from 'vitest';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { App } from '../../src/shared/app.ts';
import type { ServerOptions } from '../../src/shared/config.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { Counter } from '../../src/shared/worker-counters.ts';
import { SocketIntake } from '../../src/worker/socket-intake.ts';
import { intakeParts, until } from '../support/worker-fakes.ts';

const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';
const UPGRADE = `GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A SocketIntake fed by a loopback listener, with endpoints that record each request and answer 200. */
async function start(options: ServerOptions = {}, app: App<unknown> = {}) {
  const config = resolveConfig({ logLevel: 'silent', ...options }, 1);
  const { logger, counters, slot, endpoints, requests, connections, upgrade } = intakeParts(config, app);
  const intake = new SocketIntake({ config, logger, counters, slot, upgrade, endpoints, connections });
  const listener: Server = createServer((socket) => intake.adopt(socket));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const clients: Socket[] = [];
  cleanups.push(() => {
    for (const client of clients) client.destroy();
    for (const connection of connections) connection.terminate();
    intake.closeAll();
    listener.close();
  });
  const port = (listener.address() as AddressInfo).port;
  /** A client; `received` gathers what the server sent. */
  const client = async (send?: string) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    clients.push(socket);
    const state = { socket, received: '', closed: false };
    socket.setEncoding('latin1').on('data', (chunk: string) => (state.received += chunk));
    socket.on('close', () => (state.closed = true));
    await once(socket, 'connect');
    if (send !== undefined) socket.write(send, 'latin1');
    return state;
  };
  return { intake, slot, requests, connections, client };
}

describe('SocketIntake', () => {
  it('turns an upgrade into a connection; the socket stops counting as a handshake', async () => {
    const { slot, connections, client } = await start();
    const c = await client();
    await until(() => slot[Counter.Handshakes] === 1, 'the socket to count as a handshake');
    c.socket.write(UPGRADE);
    await until(() => c.received.includes('\r\n\r\n'), 'the 101');
    expect(c.received).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(c.received).toContain(`\r\nSec-WebSocket-Accept: ${RFC_ACCEPT}\r\n`);
    expect(connections.size).toBe(1);
    expect(slot[Counter.Handshakes]).toBe(0);
    expect(slot[Counter.Connections]).toBe(1);
    expect(slot[Counter.SocketsAdopted]).toBe(1);
    expect(slot[Counter.HandshakesTotal]).toBe(1);

    c.socket.destroy();
    await until(() => connections.size === 0, 'the connection to close');
    expect(slot[Counter.Connections]).toBe(0);
  });

  /** A client whose upgrade hook waits until the test calls `decide`. */
  async function heldUpgrade() {
    let decide!: () => void;
    const decided = new Promise<void>((resolve) => (decide = resolve));
    let asked = 0;
    const started = await start({}, {
      async upgrade() {
        asked++;
        await decided;
        return { data: 1 };
      },
    });
    const c = await started.client(UPGRADE);
    await until(() => asked === 1, 'the upgrade hook');
    return { ...started, c, decide };
  }

  it('counts a socket as a handshake while an async upgrade hook runs, and a connection only after', async () => {
    const { slot, connections, c, decide } = await heldUpgrade();
    expect(slot[Counter.Handshakes]).toBe(1);
    expect(slot[Counter.Connections]).toBe(0);
    expect(c.received).toBe('');
    decide();
    await until(() => c.received.includes('\r\n\r\n'), 'the 101');
    expect(c.received).toMatch(/^HTTP\/1\.1 101 /);
    expect(slot[Counter.Handshakes]).toBe(0);
    expect(slot[Counter.Connections]).toBe(1);
    expect(connections.size).toBe(1);
  });

  it('makes no connection of a socket that closed while the upgrade hook ran', async () => {
    const { slot, connections, c, decide } = await heldUpgrade();
    c.socket.destroy();
    await until(() => slot[Counter.Handshakes] === 0, 'the handshake to end with the socket');
    decide();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(connections.size).toBe(0);
    expect(slot[Counter.Connections]).toBe(0);
    expect(slot[Counter.Handshakes]).toBe(0);
  });

  it('writes the refusal of an upgrade the handler refuses, and ends the handshake', async () => {
    const { slot, connections, client } = await start();
    const c = await client(UPGRADE.replace('Version: 13', 'Version: 8'));
    await until(() => c.closed, 'the refused socket to close');
    expect(c.received).toMatch(/^HTTP\/1\.1 426 /);
    expect(connections.size).toBe(0);
    await until(() => slot[Counter.Handshakes] === 0, 'the handshake count to drop');
    expect(slot[Counter.HandshakesRejected]).toBe(1);
  });

  it('hands a plain request to the HTTP endpoints', async () => {
    const { slot, requests, client } = await start();
    const c = await client('GET /stats?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await until(() => c.closed, 'the response');
    expect(c.received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(c.received).toContain('from the endpoints');
    expect(requests).toEqual(['GET /stats?x=1']);
    expect(slot[Counter.Handshakes]).toBe(0);
  });

  it('answers a malformed request with 400 and an oversized head with 431', async () => {
    const { slot, requests, client } = await start({ maxHeaderSize: 1024 });
    const bad = await client('NOT HTTP AT ALL\r\n\r\n');
    const big = await client(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2048)}\r\n\r\n`);
    await until(() => bad.closed && big.closed, 'both refusals');
    expect(bad.received).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(big.received).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(requests).toEqual([]);
    await until(() => slot[Counter.Handshakes] === 0, 'the handshake count to drop');
  });

  it('refuses a socket past maxHandshakes with 503', async () => {
    const { slot, client } = await start({ maxHandshakes: 1 });
    const first = await client();
    await until(() => slot[Counter.Handshakes] === 1, 'the first handshake');
    const second = await client();
    await until(() => second.closed, 'the refusal');
    expect(second.received).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(second.received).toContain('too many handshakes in progress');
    expect(slot[Counter.Handshakes]).toBe(1);
    expect(slot[Counter.SocketsAdopted]).toBe(2);
    expect(first.closed).toBe(false);
  });

  it('closes a socket that sends nothing within the handshake timeout', async () => {
    const { slot, client } = await start({ handshakeTimeout: 0.2 });
    const c = await client();
    await until(() => slot[Counter.Handshakes] === 1, 'the handshake');
    await until(() => c.closed, 'the silent socket to be closed', 5000);
    expect(c.received).toBe('');
    await until(() => slot[Counter.Handshakes] === 0, 'the handshake count to drop');
  });

  it('refuses new sockets with 503 once stopped', async () => {
    const { intake, slot, client } = await start();
    intake.stop();
    const c = await client();
    await until(() => c.closed, 'the refusal');
    expect(c.received).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(c.received).toContain('server shutting down');
    expect(slot[Counter.Handshakes]).toBe(0);
  });

  describe('reading the request head itself (plain TCP)', () => {
    it('upgrades a head that trickles in a byte at a time', async () => {
      const { connections, client } = await start();
      const c = await client();
      for (const byte of UPGRADE) {
        c.socket.write(byte, 'latin1');
        await new Promise((resolve) => setImmediate(resolve));
      }
      await until(() => c.received.includes('\r\n\r\n'), 'the 101');
      expect(c.received).toMatch(/^HTTP\/1\.1 101 /);
      expect(connections.size).toBe(1);
    });

    it('keeps a frame the client sent before the 101 and answers it after', async () => {
      const { client } = await start({}, { message: (ws, data) => ws.send(`echo ${data.toString()}`) });
      // A masked text frame "hi" right behind the request, in the same write.
      const frame = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 'h'.charCodeAt(0) ^ 1, 'i'.charCodeAt(0) ^ 2]);
      const c = await client();
      c.socket.write(Buffer.concat([Buffer.from(UPGRADE, 'latin1'), frame]));
      await until(() => c.received.includes('echo hi'), 'the echo');
      expect(c.received.indexOf('HTTP/1.1 101')).toBe(0);
    });

    it('gives the app the headers Node would, and builds req.raw only when asked', async () => {
      const seen: { headers: unknown; raw: IncomingMessage | null }[] = [];
      const { client } = await start({}, {
        upgrade(req) {
          seen.push({ headers: req.headers, raw: req.url.includes('raw') ? req.raw : null });
        },
      });
      const c = await client(UPGRADE.replace('/chat', '/raw').replace('Host: x', 'Host: x\r\nCookie: a=1\r\nCookie: b=2'));
      await until(() => c.received.includes('\r\n\r\n'), 'the 101');
      expect(seen[0]!.headers).toMatchObject({ host: 'x', cookie: 'a=1; b=2', upgrade: 'websocket' });
      const raw = seen[0]!.raw!;
      expect([raw.method, raw.url, raw.httpVersion]).toEqual(['GET', '/raw', '1.1']);
      expect(raw.headers).toBe(seen[0]!.headers);
      expect(raw.rawHeaders).toContain('Cookie');
      expect(raw.socket.remotePort).toBe(c.socket.localPort);
    });

    it('hands a plain request, and an unusual upgrade, to Node\'s parser with the bytes read so far', async () => {
      const { requests, connections, client } = await start();
      const plain = await client();
      plain.socket.write('GET /stats HT', 'latin1');
      await new Promise((resolve) => setTimeout(resolve, 20));
      plain.socket.write('TP/1.1\r\nHost: x\r\n\r\n', 'latin1');
      await until(() => plain.received.includes('from the endpoints'), 'the endpoint answer');
      expect(requests).toEqual(['GET /stats']);
      // An obs-fold line this parser leaves alone: Node's refuses it (400), as it always has.
      const folded = await client(UPGRADE.replace('Host: x', 'Host: x\r\nX-Folded: a\r\n b'));
      await until(() => folded.closed, 'the refusal');
      expect(folded.received).toMatch(/^HTTP\/1\.1 400 /);
      // 120 fields: more than this parser reads, fine for Node's: upgraded through http.Server.
      const many = await client(UPGRADE.replace('Host: x', `Host: x\r\n${'X-Field: 1\r\n'.repeat(119)}`.slice(0, -2)));
      await until(() => many.received.includes('\r\n\r\n'), 'the 101');
      expect(many.received).toMatch(/^HTTP\/1\.1 101 /);
      expect(connections.size).toBe(1);
    });

    it('answers an upgrade head past maxHeaderSize with 431, through Node\'s parser', async () => {
      const { client } = await start({ maxHeaderSize: 1024 });
      const c = await client(UPGRADE.replace('Host: x', `Host: x\r\nX-Big: ${'a'.repeat(2048)}`));
      await until(() => c.closed, 'the refusal');
      expect(c.received).toMatch(/^HTTP\/1\.1 431 /);
    });
  });
});
