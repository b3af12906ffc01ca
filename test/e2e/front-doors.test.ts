/**
 * The ways in: a Unix domain socket, the PROXY protocol (v1 and v2, before plain TCP or TLS),
 * certificates chosen by SNI, client certificates (mTLS), and routes with their own apps and
 * settings. Real clients over real sockets; raw sockets for the PROXY header.
 */
import { readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawConnection, TestClient, acceptMode, cleanup, fixtureApp, startServer, upgradeRequest, waitFor, withTimeout } from './helpers.ts';

const tlsFixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const pem = (name: string): string => readFileSync(tlsFixture(name), 'utf8');

afterEach(cleanup);

/** The JSON greeting peer-info sends on open. */
interface PeerInfo {
  readonly remote: string;
  readonly upgradeRemote: string;
  readonly url: string;
  readonly worker: number;
  readonly tls: { servername: string | null; authorized: boolean; authorizationError: string | null; subject: string | null } | null;
}

/** Reads the first WebSocket frame's payload off a raw connection after its 101. */
async function greeting(raw: RawConnection): Promise<PeerInfo> {
  const frame = await raw.nextFrame();
  return JSON.parse(frame.payload.toString()) as PeerInfo;
}

describe('Unix domain socket', () => {
  it.skipIf(acceptMode !== 'reuseport')('refuses listen({ path }) with a clear error where sockets cannot be transferred', async () => {
    await expect(startServer({ path: join(tmpdir(), `shardws-${process.pid}.sock`) })).rejects.toThrow(/needs Node >= 26\.6/);
  });

  it.skipIf(acceptMode !== 'transfer')('serves WebSocket clients on listen({ path }), on every worker, and removes the file on close', async () => {
    const path = join(tmpdir(), `shardws-${process.pid}-${Date.now()}.sock`);
    try {
      const server = await startServer({ path, app: fixtureApp('peer-info') });
      expect(server.address()).toMatchObject({ address: path, family: 'unix' });
      const workers = new Set<number>();
      for (let i = 0; i < 8 && workers.size < 2; i++) {
        const client = await new TestClient(`ws+unix://${path}:/room`).opened();
        const info = JSON.parse(await client.nextText()) as PeerInfo;
        expect(info.url).toBe('/room');
        workers.add(info.worker);
        expect((await client.request('over a unix socket')).data.toString()).toBe('over a unix socket');
      }
      expect(workers).toEqual(new Set([0, 1]));
      await server.close();
      expect(() => readFileSync(path)).toThrow();
    } finally {
      rmSync(path, { force: true });
    }
  });
});

describe('PROXY protocol', () => {
  it('takes the client address from a v1 header, in ws.remoteAddress, the upgrade and HTTP requests', async () => {
    const server = await startServer({ proxyProtocol: true, app: fixtureApp('peer-info') });
    const raw = await RawConnection.open(server.address().port);
    raw.socket.write('PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n');
    const head = await raw.request(upgradeRequest('/v1'));
    expect(head.status).toBe(101);
    expect(await greeting(raw)).toMatchObject({ remote: '203.0.113.7', upgradeRemote: '203.0.113.7', url: '/v1' });

    const http = await RawConnection.open(server.address().port);
    http.socket.write('PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\nGET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await http.waitEnded();
    // The body, whether chunked or not.
    expect(JSON.parse(/\{.*\}/s.exec(http.buffered.toString())![0])).toMatchObject({ remote: '2001:db8::1', url: '/who' });
  });

  it('takes it from a v2 header (with TLVs), and a LOCAL one keeps the proxy address', async () => {
    const server = await startServer({ proxyProtocol: true, app: fixtureApp('peer-info') });
    const v2 = (command: number, family: number, body: Buffer): Buffer => {
      const header = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20 | command, family, 0, 0]);
      header.writeUInt16BE(body.length, 14);
      return Buffer.concat([header, body]);
    };
    // IPv4 198.51.100.23:40000 -> 192.0.2.1:443, then a NOOP TLV of 3 bytes.
    const addresses = Buffer.from([198, 51, 100, 23, 192, 0, 2, 1, 0x9c, 0x40, 0x01, 0xbb, 0x04, 0x00, 0x00]);
    const raw = await RawConnection.open(server.address().port);
    raw.socket.write(Buffer.concat([v2(1, 0x11, addresses), Buffer.from(upgradeRequest('/v2'), 'latin1')]));
    expect((await raw.request('')).status).toBe(101);
    expect(await greeting(raw)).toMatchObject({ remote: '198.51.100.23', upgradeRemote: '198.51.100.23' });

    const local = await RawConnection.open(server.address().port);
    local.socket.write(v2(0, 0x00, Buffer.alloc(0)));
    expect((await local.request(upgradeRequest('/health-check'))).status).toBe(101);
    expect((await greeting(local)).remote).toBe('127.0.0.1');
  });

  it('closes at once a connection without a valid header, and goes on serving', async () => {
    const server = await startServer({ proxyProtocol: true, app: fixtureApp('peer-info') });
    for (const start of [upgradeRequest('/no-header'), 'PROXY TCP4 999.1.1.1 192.0.2.1 1 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n', `PROXY ${'x'.repeat(120)}`]) {
      const raw = await RawConnection.open(server.address().port);
      raw.socket.write(start);
      await raw.waitEnded();
      expect(raw.buffered.length).toBe(0);
    }
    const raw = await RawConnection.open(server.address().port);
    raw.socket.write('PROXY UNKNOWN\r\n');
    expect((await raw.request(upgradeRequest())).status).toBe(101);
    expect((await greeting(raw)).remote).toBe('127.0.0.1');
    await waitFor(() => server.stats().workers.every((w) => w.handshakes === 0), 'no handshake left in progress');
  });

  it('reads the header before TLS', async () => {
    const server = await startServer({ proxyProtocol: true, app: fixtureApp('peer-info'), tls: { certFile: tlsFixture('cert.pem'), keyFile: tlsFixture('key.pem') } });
    const tcp = netConnect(server.address().port, '127.0.0.1');
    await new Promise((resolve) => tcp.once('connect', resolve));
    tcp.write('PROXY TCP4 203.0.113.99 192.0.2.1 1234 443\r\n');
    const client = new WebSocket(`wss://localhost:${server.address().port}/tls`, {
      ca: pem('cert.pem'),
      createConnection: () => tlsConnect({ socket: tcp, servername: 'localhost', ca: pem('cert.pem') }),
    } as WebSocket.ClientOptions);
    const info = await withTimeout(new Promise<PeerInfo>((resolve, reject) => {
      client.once('message', (data) => resolve(JSON.parse(String(data)) as PeerInfo));
      client.once('error', reject);
    }), 'the greeting over TLS');
    expect(info).toMatchObject({ remote: '203.0.113.99', tls: { servername: 'localhost' } });
    client.terminate();
  });

  it('is off by default: a PROXY header is then just a bad request', async () => {
    const server = await startServer({ app: fixtureApp('peer-info') });
    const raw = await RawConnection.open(server.address().port);
    const head = await raw.request(`PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n${upgradeRequest()}`);
    expect(head.status).toBe(400);
  });
});

describe('TLS: SNI and client certificates', () => {
  const base = { certFile: tlsFixture('cert.pem'), keyFile: tlsFixture('key.pem') };

  it('chooses the certificate by server name, exact or *., the default otherwise, and reloads them', async () => {
    const server = await startServer({ app: fixtureApp('peer-info'), tls: { ...base, sni: { 'chat.example': { cert: pem('sni-cert.pem'), key: pem('sni-key.pem') }, '*.feeds.example': { certFile: tlsFixture('sni-cert.pem'), keyFile: tlsFixture('sni-key.pem') } } } });
    const subjectFor = async (servername: string): Promise<string> => {
      const socket: TLSSocket = tlsConnect({ port: server.address().port, host: '127.0.0.1', servername, rejectUnauthorized: false });
      await withTimeout(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)), 'a TLS handshake');
      const cn = String(socket.getPeerCertificate().subject.CN);
      socket.destroy();
      return cn;
    };
    expect(await subjectFor('chat.example')).toBe('chat.example');
    expect(await subjectFor('CHAT.example')).toBe('chat.example');
    expect(await subjectFor('eu.feeds.example')).toBe('chat.example');
    expect(await subjectFor('a.b.feeds.example')).toBe('localhost');
    expect(await subjectFor('localhost')).toBe('localhost');
    // The app sees the name the client asked for.
    const client = await new TestClient(`wss://localhost:${server.address().port}/`, undefined, { ca: pem('cert.pem') }).opened();
    expect((JSON.parse(await client.nextText()) as PeerInfo).tls?.servername).toBe('localhost');
    // A reload swaps the whole set.
    server.reloadTls({ ...base, sni: { 'chat.example': { certFile: tlsFixture('cert2.pem'), keyFile: tlsFixture('key2.pem') } } });
    let subject = '';
    for (let attempt = 0; attempt < 50 && subject !== 'localhost-renewed'; attempt++) {
      subject = await subjectFor('chat.example');
      if (subject !== 'localhost-renewed') await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(subject).toBe('localhost-renewed');
  });

  it('asks for client certificates: a verified one reaches upgrade(req), none or a stranger is refused', async () => {
    const server = await startServer({ app: fixtureApp('peer-info'), tls: { ...base, ca: pem('ca.pem'), requestCert: true } });
    const url = `wss://localhost:${server.address().port}/secure`;
    const withCert = await new TestClient(url, undefined, { ca: pem('cert.pem'), cert: pem('client-cert.pem'), key: pem('client-key.pem') }).opened();
    const info = JSON.parse(await withCert.nextText()) as PeerInfo;
    expect(info.tls).toMatchObject({ authorized: true, subject: 'client-ann', authorizationError: null });
    // No certificate, or one the CA did not sign: the TLS handshake fails, no upgrade happens.
    await expect(new TestClient(url, undefined, { ca: pem('cert.pem') }).opened()).rejects.toThrow();
    await expect(new TestClient(url, undefined, { ca: pem('cert.pem'), cert: pem('sni-cert.pem'), key: pem('sni-key.pem') }).opened()).rejects.toThrow();
  });

  it('with rejectUnauthorized false lets the app decide, telling it why a certificate failed', async () => {
    const server = await startServer({ app: fixtureApp('peer-info'), tls: { ...base, ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: false } });
    const url = `wss://localhost:${server.address().port}/`;
    const stranger = await new TestClient(url, undefined, { ca: pem('cert.pem'), cert: pem('sni-cert.pem'), key: pem('sni-key.pem') }).opened();
    expect((JSON.parse(await stranger.nextText()) as PeerInfo).tls).toMatchObject({ authorized: false, subject: 'chat.example' });
    const anonymous = await new TestClient(url, undefined, { ca: pem('cert.pem') }).opened();
    const info = JSON.parse(await anonymous.nextText()) as PeerInfo;
    expect(info.tls).toMatchObject({ authorized: false, subject: null });
    expect(info.tls?.authorizationError).toBeTruthy();
  });
});

describe('routes', () => {
  it('sends each path to its app with its own settings; other paths get 404', async () => {
    const server = await startServer({
      routes: {
        '/chat': { app: fixtureApp('shard-echo'), maxPayloadLength: 1024 },
        '/feed/*': { app: fixtureApp('peer-info'), deflate: 'shared' },
      },
    });
    const port = server.address().port;
    const chat = await new TestClient(`ws://127.0.0.1:${port}/chat?room=1`, undefined, { perMessageDeflate: true }).opened();
    expect(JSON.parse(await chat.nextText())).toHaveProperty('hello');
    expect(chat.ws.extensions).toBe('');
    expect((await chat.request('x'.repeat(1000))).data.length).toBe(1000);
    chat.ws.send('x'.repeat(2000));
    expect((await chat.waitClosed()).code).toBe(1009);

    const feed = await new TestClient(`ws://127.0.0.1:${port}/feed/prices`, undefined, { perMessageDeflate: true }).opened();
    expect(feed.ws.extensions).toContain('permessage-deflate');
    expect((JSON.parse(await feed.nextText()) as PeerInfo).url).toBe('/feed/prices');
    expect((await feed.request('y'.repeat(5000))).data.length).toBe(5000);
    // /feed itself belongs to /feed/*; /feedback does not.
    await new TestClient(`ws://127.0.0.1:${port}/feed`).opened();
    const other = await RawConnection.open(port);
    expect((await other.request(upgradeRequest('/feedback'))).status).toBe(404);
    // Plain HTTP follows the routes too: peer-info answers, the rest is 404 or 426.
    expect((await fetch(`http://127.0.0.1:${port}/feed/x`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/chat`)).status).toBe(426);
    expect((await fetch(`http://127.0.0.1:${port}/elsewhere`)).status).toBe(404);
  });
});
