/**
 * The shardws client against shardws servers over real sockets: what the app sees of the
 * request (headers, origin, credentials), wss:// to an IP address directly and through a
 * CONNECT proxy, ping/pong both ways, Blobs, and reconnection across a server that is stopped
 * and started again on the same port.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from '../../src/client/websocket.ts';
import type { ClientOptions } from '../../src/client/websocket.ts';
import { listen } from '../../src/main/listen.ts';
import type { ListenOptions, ShardServer } from '../../src/main/listen.ts';
import { traceClient } from '../support/client-trace.ts';
import { startConnectProxy } from '../support/connect-proxy.ts';
import type { ConnectProxy } from '../support/connect-proxy.ts';
import { fixtureApp } from './helpers.ts';
import { testCert, tlsFixturePath } from '../support/tls-fixture.ts';

const ca = testCert;
const tls = { certFile: tlsFixturePath('cert.pem'), keyFile: tlsFixturePath('key.pem') };

const servers = new Set<ShardServer>();
const clients = new Set<WebSocket>();
const proxies = new Set<ConnectProxy>();

afterEach(async () => {
  for (const ws of clients) ws.terminate();
  clients.clear();
  for (const proxy of proxies) await proxy.close();
  proxies.clear();
  await Promise.all([...servers].map((server) => server.close()));
  servers.clear();
});

async function start(options: ListenOptions = {}): Promise<ShardServer> {
  const server = await listen({ app: fixtureApp('client-probe'), port: 0, host: '127.0.0.1', workers: 1, logLevel: 'silent', shutdownGrace: 1, ...options });
  servers.add(server);
  return server;
}

async function stop(server: ShardServer): Promise<void> {
  servers.delete(server);
  await server.close();
}

function connect(url: string, protocols?: string | string[] | ClientOptions, options?: ClientOptions): WebSocket {
  const ws = new WebSocket(url, protocols, options);
  clients.add(ws);
  return ws;
}

interface Greeting {
  readonly url: string;
  readonly headers: Record<string, string | undefined>;
}

describe('what a shardws app sees of the request', () => {
  it('headers, origin, URL credentials, subprotocols and the deflate offer arrive as given', async () => {
    const server = await start({ deflate: 'shared' });
    const port = server.address().port;
    const ws = connect(`ws://ann:pw@127.0.0.1:${port}/room?x=1`, ['chat'], {
      headers: { 'X-Trace': 'trace-7', Cookie: 'sid=42' },
      origin: 'https://app.example',
    });
    const trace = traceClient(ws);
    const greeting = JSON.parse(String(await trace.next())) as Greeting;
    expect(greeting.url).toBe('/room?x=1');
    expect(greeting.headers).toEqual({
      host: `127.0.0.1:${port}`,
      origin: 'https://app.example',
      authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}`,
      cookie: 'sid=42',
      'x-trace': 'trace-7',
      'sec-websocket-protocol': 'chat',
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
    });
    expect(ws.extensions).toContain('permessage-deflate');
  });
});

describe('wss:// and proxies', () => {
  it('reaches a TLS server by IP address, directly and through an authenticating CONNECT proxy', async () => {
    const server = await start({ tls, deflate: 'dedicated' });
    const url = `wss://127.0.0.1:${server.address().port}/tls`;
    const proxy = await startConnectProxy({ credentials: 'p:q' });
    proxies.add(proxy);
    for (const options of [{ tls: { ca } }, { tls: { ca }, proxy: proxy.url.replace('http://', 'http://p:q@') }]) {
      const ws = connect(url, options);
      const trace = traceClient(ws);
      expect(JSON.parse(String(await trace.next())).url).toBe('/tls');
      ws.send('hello over tls');
      expect(await trace.next()).toBe('hello over tls');
      ws.close();
      expect((await trace.closed()).wasClean).toBe(true);
    }
    expect(proxy.tunnels.map((t) => t.authority)).toEqual([`127.0.0.1:${server.address().port}`]);
  });

  it('fails with the proxy refusal when the proxy wants credentials', async () => {
    const server = await start();
    const proxy = await startConnectProxy({ credentials: 'p:q' });
    proxies.add(proxy);
    const trace = traceClient(connect(`ws://127.0.0.1:${server.address().port}/`, { proxy: proxy.url }));
    await trace.closed();
    expect(trace.events).toEqual(['error', 'close 1006 false']);
    expect(trace.errors[0]).toMatchObject({ status: 407, fromProxy: true });
  });
});

describe('ping, pong and Blobs', () => {
  it("ping() gets the server's pong; the server's keep-alive pings arrive as ping events and are answered", async () => {
    // shardws pings a quiet peer halfway through idleTimeout: a client that answers is never closed.
    const server = await start({ idleTimeout: 1, sendPings: true });
    const ws = connect(`ws://127.0.0.1:${server.address().port}/`);
    const trace = traceClient(ws);
    const pongs: string[] = [];
    ws.addEventListener('pong', (e) => pongs.push(e.data.toString()));
    await trace.waitFor('open');
    ws.ping('client ping');
    await trace.waitFor('pong');
    expect(pongs).toEqual(['client ping']);
    await trace.waitFor('ping', 3, 10_000);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(trace.events).not.toContain('close');
  });

  it("with binaryType 'blob', binary messages arrive as Blobs; Blobs sent go out in order", async () => {
    const server = await start({ deflate: 'shared' });
    const ws = connect(`ws://127.0.0.1:${server.address().port}/`);
    ws.binaryType = 'blob';
    const trace = traceClient(ws);
    await trace.next(); // the greeting
    ws.send(new Blob([new Uint8Array(50_000).fill(1)]));
    ws.send('between');
    ws.send(new Blob(['last']));
    const first = await trace.next();
    expect(first).toBeInstanceOf(Blob);
    expect((first as Blob).size).toBe(50_000);
    expect(await trace.next()).toBe('between');
    expect(await (await trace.next() as Blob).text()).toBe('last');
  });
});

describe('reconnect across a server restart', () => {
  it('loses the connection on shutdown (1001), retries with backoff while the port is closed, and opens again once the server is back', async () => {
    // A long grace: the 1001 is answered and the close is clean even on a loaded machine.
    let server = await start({ workers: 2, shutdownGrace: 5 });
    const port = server.address().port;
    const ws = connect(`ws://127.0.0.1:${port}/chat`, { reconnect: { minDelay: 0.05, maxDelay: 0.2, jitter: 0.5 } });
    const trace = traceClient(ws);
    await trace.waitFor('open');
    await trace.next();

    await stop(server);
    // Two failed attempts while nothing listens, then the server comes back on the same port.
    await trace.waitFor('reconnect', 3, 10_000);
    server = await start({ workers: 2, shutdownGrace: 5, port });
    await trace.waitFor('open', 2, 15_000);
    const greeting = JSON.parse(String(await trace.next())) as Greeting;
    expect(greeting.url).toBe('/chat');

    const attempts = trace.events.filter((e) => e.startsWith('reconnect')).length;
    const events = trace.events.filter((e) => e !== 'message');
    expect(events.slice(0, 3)).toEqual(['open', 'close 1001 true reconnect', 'reconnect 1']);
    // While the server was down every attempt was an error and a close that announced the next one.
    for (let n = 2; n <= attempts; n++) expect(events.slice(3 * n - 3, 3 * n)).toEqual(['error', 'close 1006 false reconnect', `reconnect ${n}`]);
    expect(events.slice(3 * attempts)).toEqual([`open reconnected ${attempts}`]);

    ws.send('after the restart');
    expect(await trace.next()).toBe('after the restart');
    ws.close(1000);
    const close = await trace.closed();
    expect(close).toMatchObject({ code: 1000, wasClean: true, willReconnect: false });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(trace.events.at(-1)).toBe('close 1000 true');
  });

  it('does not reconnect when the app closes with 1000 or 1008, and does with 1011', async () => {
    const server = await start();
    const url = `ws://127.0.0.1:${server.address().port}/`;
    for (const [code, again] of [[1000, false], [1008, false], [1011, true]] as const) {
      const ws = connect(url, { reconnect: { minDelay: 0.05, maxDelay: 0.05, jitter: 0 } });
      const trace = traceClient(ws);
      const closed = trace.closed();
      await trace.next();
      ws.send(`close:${code}:server says so`);
      await trace.waitFor('close');
      if (again) {
        await trace.waitFor('open', 2);
        ws.close();
      }
      await closed;
      expect(trace.events.filter((e) => e !== 'message'), String(code)).toEqual(
        again ? ['open', `close ${code} true reconnect`, 'reconnect 1', 'open reconnected 1', 'close 1005 true'] : ['open', `close ${code} true`],
      );
    }
  });
});
