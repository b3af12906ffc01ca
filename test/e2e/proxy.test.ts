/**
 * The reverse proxy end to end: a shardws gateway between real clients (ws, our client) and real
 * upstreams (a ws server, another shardws server, servers that refuse or never answer), in
 * message mode and passthrough, with several upstreams, and the faults a gateway meets.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { WebSocket as WsSocket } from 'ws';
import { WebSocket as ShardClient } from '../../src/client/websocket.ts';
import type { ShardServer } from '../../src/main/listen.ts';
import { RawConnection, TestClient, cleanup, clientFrame, fixtureApp, startServer, upgradeRequest, waitFor, withTimeout } from './helpers.ts';

interface UpstreamConnection {
  readonly ws: WsSocket;
  readonly req: IncomingMessage;
  readonly received: { data: Buffer; isBinary: boolean }[];
  close: { code: number; reason: string } | null;
}

/** A ws echo server on a loopback port that records each connection. */
class Upstream {
  readonly server: WebSocketServer;
  readonly connections: UpstreamConnection[] = [];
  echo = true;

  private constructor(server: WebSocketServer) {
    this.server = server;
    server.on('connection', (ws, req) => {
      const connection: UpstreamConnection = { ws, req, received: [], close: null };
      this.connections.push(connection);
      ws.on('message', (data: Buffer, isBinary) => {
        connection.received.push({ data, isBinary });
        if (this.echo) ws.send(data, { binary: isBinary });
      });
      ws.on('close', (code, reason) => (connection.close = { code, reason: reason.toString() }));
      ws.on('error', () => {});
    });
  }

  static async start(options: ConstructorParameters<typeof WebSocketServer>[0] = {}): Promise<Upstream> {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, ...options });
    await new Promise((resolve) => server.once('listening', resolve));
    const upstream = new Upstream(server);
    upstreams.push(upstream);
    return upstream;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const upstreams: Upstream[] = [];
const netServers: Server[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  for (const server of netServers.splice(0)) server.close();
});

/** A TCP server that accepts and never answers (an upstream stuck before its 101). */
async function silentServer(): Promise<string> {
  const held: Socket[] = [];
  const server = createServer((socket) => held.push(socket));
  server.on('close', () => held.forEach((s) => s.destroy()));
  netServers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `ws://127.0.0.1:${port}`;
}

const gatewayUrl = (gateway: ShardServer, query: string): string => `ws://127.0.0.1:${gateway.address().port}/p?${query}`;
const to = (...urls: string[]): string => `to=${encodeURIComponent(urls.join(','))}`;

async function gateway(options: Parameters<typeof startServer>[0] = {}): Promise<ShardServer> {
  return startServer({ app: fixtureApp('proxy-to'), ...options });
}

/** The HTTP status a raw upgrade request gets. */
async function statusOf(url: string): Promise<{ status: number; body: string }> {
  const parsed = new URL(url);
  const raw = await RawConnection.open(Number(parsed.port));
  const head = await raw.request(upgradeRequest(parsed.pathname + parsed.search), 15_000);
  await waitFor(() => raw.ended || raw.closed, 'the gateway to close the refused connection', 15_000);
  return { status: head.status, body: raw.buffered.toString() };
}

describe('proxy: message mode', () => {
  it('relays text, binary and fragmented messages both ways; the client negotiates deflate, the upstream gets none', async () => {
    const upstream = await Upstream.start();
    const gw = await gateway({ deflate: true });
    const client = await new TestClient(gatewayUrl(gw, `${to(upstream.url)}&user=ann`), undefined, { perMessageDeflate: true }).opened();
    expect(client.ws.extensions).toContain('permessage-deflate');
    expect((await client.request('hello upstream')).data.toString()).toBe('hello upstream');
    const binary = Buffer.alloc(300_000, 7);
    const echoed = await client.request(binary);
    expect(echoed.isBinary).toBe(true);
    expect(echoed.data.equals(binary)).toBe(true);
    // A message in three fragments arrives whole, with its type.
    client.ws.send('frag-', { fin: false });
    client.ws.send('ment-', { fin: false });
    client.ws.send('ed', { fin: true });
    expect(await client.nextText()).toBe('frag-ment-ed');
    const leg = upstream.connections[0]!;
    expect(leg.req.headers['sec-websocket-extensions']).toBeUndefined();
    expect(leg.req.headers['x-gateway-user']).toBe('ann');
    expect(leg.req.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(leg.req.headers['x-forwarded-proto']).toBe('http');
    expect(leg.received.map((m) => m.isBinary)).toEqual([false, true, false]);
    expect(leg.received[2]!.data.toString()).toBe('frag-ment-ed');
  });

  it("gives the client the subprotocol the upstream chose, from the client's offer", async () => {
    const upstream = await Upstream.start({ handleProtocols: (offered) => (offered.has('chat.v2') ? 'chat.v2' : false) });
    const gw = await gateway();
    const client = await new TestClient(gatewayUrl(gw, to(upstream.url)), ['chat.v1', 'chat.v2']).opened();
    expect(client.ws.protocol).toBe('chat.v2');
    expect(upstream.connections[0]!.req.headers['sec-websocket-protocol']).toBe('chat.v1, chat.v2');
  });

  it('answers 502 and never a 101 when the upstream picks a subprotocol the client did not offer', async () => {
    const upstream = await Upstream.start({ handleProtocols: () => 'other' });
    const gw = await gateway();
    const { status } = await statusOf(gatewayUrl(gw, `${to(upstream.url)}&protocols=other`));
    expect(status).toBe(502);
  });

  it('propagates close codes and reasons both ways', async () => {
    const upstream = await Upstream.start();
    const gw = await gateway();
    const first = await new TestClient(gatewayUrl(gw, to(upstream.url))).opened();
    first.ws.close(4001, 'client says bye');
    await first.waitClosed();
    await waitFor(() => upstream.connections[0]?.close !== null, 'the upstream to see the close');
    expect(upstream.connections[0]!.close).toEqual({ code: 4001, reason: 'client says bye' });

    const second = await new TestClient(gatewayUrl(gw, to(upstream.url))).opened();
    await second.request('ready');
    upstream.connections[1]!.ws.close(4002, 'upstream says bye');
    expect(await second.waitClosed()).toEqual({ code: 4002, reason: 'upstream says bye' });
  });

  it('works in front of another shardws server, with our own client', async () => {
    const backend = await startServer({ app: fixtureApp('shard-echo') });
    const gw = await gateway({ deflate: 'shared' });
    const ws = new ShardClient(gatewayUrl(gw, to(`ws://127.0.0.1:${backend.address().port}/echo`)));
    const got: string[] = [];
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.onmessage = (event) => {
          got.push(String(event.data));
          if (got.length === 1) ws.send('through two servers');
          else resolve();
        };
        ws.onerror = (event) => reject(event.error);
      }),
      'the backend greeting and the echo',
    );
    expect(JSON.parse(got[0]!)).toHaveProperty('hello');
    expect(got[1]).toBe('through two servers');
    expect(ws.extensions).toContain('permessage-deflate');
    ws.close();
  });

  it('offers deflate to the upstream when the target asks, and relays through it', async () => {
    const upstream = await Upstream.start({ perMessageDeflate: { threshold: 0 } });
    const gw = await gateway();
    const client = await new TestClient(gatewayUrl(gw, `${to(upstream.url)}&deflate`), undefined, { perMessageDeflate: false }).opened();
    expect(client.ws.extensions).toBe('');
    expect(upstream.connections[0]!.ws.extensions).toContain('permessage-deflate');
    const text = JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => ({ i, name: `row ${i}` })) });
    expect((await client.request(text)).data.toString()).toBe(text);
  });
});

describe('proxy: faults', () => {
  it('closes the client with 1014 when the upstream dies mid-stream', async () => {
    const upstream = await Upstream.start();
    const gw = await gateway();
    const client = await new TestClient(gatewayUrl(gw, to(upstream.url))).opened();
    expect((await client.request('before')).data.toString()).toBe('before');
    upstream.connections[0]!.ws.terminate();
    expect((await client.waitClosed()).code).toBe(1014);
  });

  it('closes the upstream with 1001 when the client vanishes', async () => {
    const upstream = await Upstream.start();
    const gw = await gateway();
    const client = await new TestClient(gatewayUrl(gw, to(upstream.url))).opened();
    await client.request('hi');
    client.socket.destroy();
    await waitFor(() => upstream.connections[0]?.close !== null, 'the upstream to be closed');
    expect(upstream.connections[0]!.close!.code).toBe(1001);
  });

  it('answers 502 when the upstream refuses the upgrade or cannot be reached', async () => {
    const refusing = await Upstream.start({ verifyClient: (_info, done) => done(false, 401) });
    const gw = await gateway();
    const refused = await statusOf(gatewayUrl(gw, to(refusing.url)));
    expect(refused.status).toBe(502);
    // The client learns no more than the status; the log says why.
    expect(refused.body).toContain('Bad Gateway');
    expect((await statusOf(gatewayUrl(gw, to(await closedPort())))).status).toBe(502);
  });

  it('answers 504 when the upstream never answers within the timeout, and counts no connection', async () => {
    const gw = await gateway({ handshakeTimeout: 30 });
    const { status } = await statusOf(gatewayUrl(gw, `${to(await silentServer())}&timeout=0.5`));
    expect(status).toBe(504);
    await waitFor(() => gw.stats().workers.every((w) => w.handshakes === 0 && w.connections === 0), 'nothing counted');
  });

  it('holds the client back while a slow upstream reads nothing: the gateway reads a bounded amount', async () => {
    const upstream = await Upstream.start();
    upstream.echo = false;
    const gw = await gateway({ workers: 1 });
    const client = await new TestClient(gatewayUrl(gw, to(upstream.url)), undefined, { perMessageDeflate: false }).opened();
    await client.request('x').catch(() => {});
    await waitFor(() => upstream.connections.length === 1, 'the upstream leg');
    // The upstream stops reading its socket.
    (upstream.connections[0]!.ws as unknown as { _socket: Socket })._socket.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    const total = 96 * 1024 * 1024;
    for (let sent = 0; sent < total; sent += chunk.length) client.ws.send(chunk);
    // Wait until the gateway has stopped taking bytes: its count stays put.
    let last = -1;
    await waitFor(
      () => {
        const now = gw.stats().workers[0]!.bytesIn;
        const settled = now === last;
        last = now;
        return settled;
      },
      'the gateway to stop reading',
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const read = gw.stats().workers[0]!.bytesIn;
    // Kernel socket buffers on the way hold some; the gateway itself only a high-water mark.
    expect(read).toBeLessThan(40 * 1024 * 1024);
    expect(client.ws.bufferedAmount).toBeGreaterThan(total - read - 16 * 1024 * 1024);
    // Once the upstream reads again, everything arrives, in order.
    (upstream.connections[0]!.ws as unknown as { _socket: Socket })._socket.resume();
    await waitFor(() => upstream.connections[0]!.received.length === 1 + total / chunk.length, 'every message at the upstream', 60_000);
  }, 90_000);

  it('holds the upstream back while the client reads nothing', async () => {
    const upstream = await Upstream.start();
    const gw = await gateway({ workers: 1 });
    const client = await new TestClient(gatewayUrl(gw, to(upstream.url)), undefined, { perMessageDeflate: false }).opened();
    await client.request('x');
    client.socket.pause();
    const leg = upstream.connections[0]!.ws;
    const chunk = Buffer.alloc(64 * 1024, 2);
    const total = 64 * 1024 * 1024;
    for (let sent = 0; sent < total; sent += chunk.length) leg.send(chunk);
    let last = -1;
    await waitFor(
      () => {
        const now = leg.bufferedAmount;
        const settled = now === last;
        last = now;
        return settled;
      },
      'the upstream to stop getting rid of its data',
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    // What the upstream could not send stays with it, not in the gateway.
    expect(leg.bufferedAmount).toBeGreaterThan(total - 40 * 1024 * 1024);
    expect(gw.stats().workers[0]!.bufferedBytes).toBeLessThan(8 * 1024 * 1024);
    client.socket.resume();
    await waitFor(() => client.received.length === 1 + total / chunk.length, 'every message at the client', 60_000);
  }, 90_000);
});

describe('proxy: several upstreams', () => {
  it('spreads connections over them, skips one that cannot be reached, and retries it after its back-off', async () => {
    const a = await Upstream.start();
    const b = await Upstream.start();
    const gw = await gateway({ workers: 1 });
    for (let i = 0; i < 6; i++) await new TestClient(gatewayUrl(gw, `${to(a.url, b.url)}&balance=round-robin`)).opened();
    expect([a.connections.length, b.connections.length]).toEqual([3, 3]);

    // b goes away: every connection still opens, on a.
    const bUrl = b.url;
    const bPort = Number(new URL(bUrl).port);
    await b.close();
    for (let i = 0; i < 4; i++) await new TestClient(gatewayUrl(gw, `${to(a.url, bUrl)}&balance=round-robin`)).opened();
    expect(a.connections.length).toBe(7);

    // b comes back on its port: after the back-off (1 s after one failure) it gets connections again.
    const revived = new WebSocketServer({ port: bPort, host: '127.0.0.1' });
    await new Promise((resolve) => revived.once('listening', resolve));
    let revivedCount = 0;
    revived.on('connection', () => revivedCount++);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1200));
      for (let i = 0; i < 4; i++) await new TestClient(gatewayUrl(gw, `${to(a.url, bUrl)}&balance=round-robin`)).opened();
      expect(revivedCount).toBeGreaterThan(0);
    } finally {
      for (const client of revived.clients) client.terminate();
      await new Promise((resolve) => revived.close(resolve));
    }
  });

  it('sends the same sticky key to the same upstream', async () => {
    const a = await Upstream.start();
    const b = await Upstream.start();
    const c = await Upstream.start();
    const gw = await gateway({ workers: 2 });
    const landed = async (key: string): Promise<string> => {
      const before = [a, b, c].map((u) => u.connections.length);
      await new TestClient(gatewayUrl(gw, `${to(a.url, b.url, c.url)}&sticky=${key}`)).opened();
      return ['a', 'b', 'c'][[a, b, c].findIndex((u, i) => u.connections.length > before[i]!)]!;
    };
    const first = await landed('tenant-42');
    for (let i = 0; i < 5; i++) expect(await landed('tenant-42')).toBe(first);
    const spread = new Set<string>();
    for (let i = 0; i < 30; i++) spread.add(await landed(`user-${i}`));
    expect(spread.size).toBe(3);
  });

  it('balances by least connections by default', async () => {
    const a = await Upstream.start();
    const b = await Upstream.start();
    const gw = await gateway({ workers: 1 });
    const held: TestClient[] = [];
    for (let i = 0; i < 4; i++) held.push(await new TestClient(gatewayUrl(gw, to(a.url, b.url))).opened());
    expect([a.connections.length, b.connections.length]).toEqual([2, 2]);
    // Close both of a's: the next two go to a, which now holds fewer.
    const onA = a.connections.map((c) => c.ws);
    for (const ws of onA) ws.close();
    await waitFor(() => a.connections.every((c) => c.close !== null), 'a to close its connections');
    await waitFor(() => held.filter((c) => c.closeEvent !== null).length === 2, 'the two clients on a to close');
    for (let i = 0; i < 2; i++) await new TestClient(gatewayUrl(gw, to(a.url, b.url))).opened();
    expect([a.connections.length, b.connections.length]).toEqual([4, 2]);
  });
});

describe('proxy: passthrough', () => {
  it("relays the upstream's 101 and bytes: extensions negotiated end to end", async () => {
    const upstream = await Upstream.start({ perMessageDeflate: { threshold: 0 } });
    const gw = await gateway({ deflate: true });
    const client = await new TestClient(gatewayUrl(gw, `${to(upstream.url)}&mode=passthrough`), undefined, { perMessageDeflate: true }).opened();
    expect(client.ws.extensions).toContain('permessage-deflate');
    expect(upstream.connections[0]!.req.headers['sec-websocket-extensions']).toContain('permessage-deflate');
    expect(upstream.connections[0]!.ws.extensions).toContain('permessage-deflate');
    const text = 'x'.repeat(10_000);
    expect((await client.request(text)).data.toString()).toBe(text);
    expect(gw.stats().connections).toBe(1);
    client.ws.close(4005, 'done');
    await waitFor(() => upstream.connections[0]!.close !== null, 'the close to reach the upstream');
    expect(upstream.connections[0]!.close).toEqual({ code: 4005, reason: 'done' });
    await waitFor(() => gw.stats().connections === 0, 'the splice to end');
  });

  it('splices a TLS client (the gateway terminates TLS) and a request head read by Node\'s parser', async () => {
    const upstream = await Upstream.start();
    const tls = { certFile: fileURLToPath(new URL('../fixtures/tls/cert.pem', import.meta.url)), keyFile: fileURLToPath(new URL('../fixtures/tls/key.pem', import.meta.url)) };
    const ca = readFileSync(tls.certFile, 'utf8');
    const secure = await gateway({ tls });
    const overTls = await new TestClient(`wss://localhost:${secure.address().port}/p?${to(upstream.url)}&mode=passthrough`, undefined, { ca }).opened();
    expect((await overTls.request('spliced under tls')).data.toString()).toBe('spliced under tls');
    expect(upstream.connections[0]!.req.headers['x-forwarded-proto']).toBe('https');
    // Over 100 fields is outside the fast path's subset: Node's parser reads this head.
    const plain = await gateway();
    const raw = await RawConnection.open(plain.address().port);
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-Field-${i}`, String(i)]));
    const head = await raw.request(upgradeRequest(`/p?${to(upstream.url)}&mode=passthrough`, many));
    expect(head.status).toBe(101);
    raw.socket.write(clientFrame(0x1, Buffer.from('raw through the splice')));
    const frame = await raw.nextFrame();
    expect(frame.payload.toString()).toBe('raw through the splice');
  });

  it('answers 502 in passthrough too when the upstream refuses', async () => {
    const refusing = await Upstream.start({ verifyClient: (_info, done) => done(false, 403) });
    const gw = await gateway();
    expect((await statusOf(gatewayUrl(gw, `${to(refusing.url)}&mode=passthrough`))).status).toBe(502);
  });
});

describe('proxy: routes and the gateway option', () => {
  it('proxies a route to a static upstream with the request path under its own, beside an app route', async () => {
    const upstream = await Upstream.start();
    const gw = await startServer({ routes: { '/legacy/*': { proxy: { url: `${upstream.url}/v1` } }, '/echo': fixtureApp('shard-echo') } });
    const port = gw.address().port;
    const proxied = await new TestClient(`ws://127.0.0.1:${port}/legacy/room?id=7`).opened();
    expect((await proxied.request('old')).data.toString()).toBe('old');
    expect(upstream.connections[0]!.req.url).toBe('/v1/legacy/room?id=7');
    const local = await new TestClient(`ws://127.0.0.1:${port}/echo`).opened();
    expect(JSON.parse(await local.nextText())).toHaveProperty('hello');
    expect((await statusOf(`ws://127.0.0.1:${port}/nowhere`)).status).toBe(404);
  });
});
