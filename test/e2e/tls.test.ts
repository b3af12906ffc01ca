/** wss:// end to end: the primary transfers plain TCP, each worker wraps it in TLS. */
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket as ShardClient } from '../../src/client/websocket.ts';
import type { ShardServer } from '../../src/main/listen.ts';
import { TestClient, cleanup, startServer, waitFor } from './helpers.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const ca = readFileSync(fixture('cert.pem'), 'utf8');
const ca2 = readFileSync(fixture('cert2.pem'), 'utf8');
const tls = { certFile: fixture('cert.pem'), keyFile: fixture('key.pem') };
const wssUrl = (server: ShardServer, path = '/echo'): string => `wss://localhost:${server.address().port}${path}`;

afterEach(cleanup);

describe('wss', () => {
  for (const deflate of [false, 'shared', 'dedicated'] as const) {
    it(`echoes text and binary to the ws client over TLS (deflate ${deflate || 'off'})`, async () => {
      const server = await startServer({ tls, deflate });
      const client = await new TestClient(wssUrl(server), undefined, { ca, perMessageDeflate: deflate !== false }).opened();
      expect((client.socket as TLSSocket).encrypted).toBe(true);
      if (deflate) expect(client.ws.extensions).toContain('permessage-deflate');
      expect((await client.request('hello over tls')).data.toString()).toBe('hello over tls');
      const binary = Buffer.alloc(100_000, 7);
      const echoed = await client.request(binary);
      expect(echoed.isBinary).toBe(true);
      expect(echoed.data.equals(binary)).toBe(true);
    });
  }

  it('serves the shardws client over TLS, with and without compression', async () => {
    const server = await startServer({ tls, deflate: 'shared' });
    for (const perMessageDeflate of [true, false]) {
      const ws = new ShardClient(wssUrl(server), [], { tls: { ca }, perMessageDeflate });
      const got = await new Promise<string>((resolve, reject) => {
        ws.onopen = () => ws.send('tls from our client');
        ws.onmessage = (event) => resolve(String(event.data));
        ws.onerror = (event) => reject(event.error);
      });
      expect(got).toBe('tls from our client');
      expect(ws.extensions.includes('permessage-deflate')).toBe(perMessageDeflate);
      ws.close();
    }
  });

  it('closes a plain-TCP client on the TLS port and goes on serving', async () => {
    const server = await startServer({ tls });
    const socket = tcpConnect(server.address().port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const client = await new TestClient(wssUrl(server), undefined, { ca }).opened();
    expect((await client.request('still here')).data.toString()).toBe('still here');
    await waitFor(() => server.stats().workers.every((w) => w.handshakes === 0), 'no handshake left in progress');
  });

  it('reloads certificates: new connections get the new one, open ones keep going', async () => {
    const server = await startServer({ tls });
    const before = await new TestClient(wssUrl(server), undefined, { ca }).opened();
    server.reloadTls({ certFile: fixture('cert2.pem'), keyFile: fixture('key2.pem') });
    // The reload reaches the workers asynchronously: try fresh connections until one has it.
    let subject = '';
    for (let attempt = 0; attempt < 50 && subject !== 'localhost-renewed'; attempt++) {
      const client = await new TestClient(wssUrl(server), undefined, { ca: [ca, ca2] }).opened();
      subject = String((client.socket as TLSSocket).getPeerCertificate().subject?.CN);
      client.ws.close();
      if (subject !== 'localhost-renewed') await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(subject).toBe('localhost-renewed');
    expect((await before.request('old connection')).data.toString()).toBe('old connection');
  });
});
