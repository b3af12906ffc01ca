/**
 * The client's opening handshake against real servers: the request's headers, an agent, 3xx
 * handling (off by default, ws's rules when on), the timeout over every hop, a CONNECT proxy,
 * and the 101s that must fail the connection (RFC 6455 §4.1).
 */
import { Agent, createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { UnexpectedResponseError } from '../../src/client/client-errors.ts';
import { resolveClientOptions } from '../../src/client/client-options.ts';
import type { ClientOptions } from '../../src/client/client-options.ts';
import { OpeningHandshake } from '../../src/client/opening-handshake.ts';
import type { HandshakeEvents, Upgraded } from '../../src/client/opening-handshake.ts';
import { HandshakeError } from '../../src/shared/errors.ts';
import { computeAcceptKey } from '../../src/shared/handshake.ts';
import { startConnectProxy } from '../support/connect-proxy.ts';
import { testCert, testKey } from '../support/tls-fixture.ts';

const cert = testCert;
const key = testKey;

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface Seen {
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly url: string;
}

/** A ws server (TLS with the fixture certificate when `tls`) recording each upgrade request it accepts. */
async function wsServer(tls = false): Promise<{ port: number; url: (host?: string) => string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const http: Server = tls ? createHttpsServer({ cert, key }) : createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: true });
  wss.on('connection', (socket, req: IncomingMessage) => {
    seen.push({ headers: req.headers, rawHeaders: req.rawHeaders, url: req.url ?? '' });
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((resolve) => wss.close(resolve));
    await new Promise((resolve) => http.close(resolve));
  });
  const port = (http.address() as AddressInfo).port;
  return { port, url: (host = '127.0.0.1') => `${tls ? 'wss' : 'ws'}://${host}:${port}`, seen };
}

/** An HTTP server that answers every upgrade request with `answer(req)`, written raw. */
async function rawServer(answer: (req: IncomingMessage) => string | null): Promise<{ port: number; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const sockets = new Set<Duplex>();
  const http = createServer();
  http.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    requests.push(req);
    sockets.add(socket);
    socket.on('error', () => {});
    const text = answer(req);
    if (text !== null) socket.end(text);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => http.close(resolve));
  });
  return { port: (http.address() as AddressInfo).port, requests };
}

const redirectTo = (location: string, status = 302): string => `HTTP/1.1 ${status} Moved\r\nLocation: ${location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;

interface Outcome {
  readonly result: Upgraded | null;
  readonly error: Error | null;
  readonly redirects: string[];
}

const EVENTS: HandshakeEvents<{ resolve: (o: Outcome) => void; redirects: string[] }> = {
  upgraded(owner, result) {
    closers.push(() => void result.socket.destroy());
    owner.resolve({ result, error: null, redirects: owner.redirects });
  },
  redirected(owner, url, status) {
    owner.redirects.push(`${status} ${url.href}`);
  },
  failed(owner, error) {
    owner.resolve({ result: null, error, redirects: owner.redirects });
  },
};

function handshake(url: string, options: ClientOptions = {}, protocols: string[] = []): Promise<Outcome> {
  return new Promise((resolve) => {
    new OpeningHandshake(new URL(url), protocols, resolveClientOptions(options), EVENTS, { resolve, redirects: [] }).start();
  });
}

describe('the upgrade request', () => {
  it('carries the caller headers, the origin and the URL credentials, after the handshake headers', async () => {
    const server = await wsServer();
    const { result } = await handshake(`ws://ann:s%C3%A9cret@127.0.0.1:${server.port}/path?q=1`, {
      headers: { 'X-Trace': 'abc', Cookie: ['a=1', 'b=2'] },
      origin: 'https://app.example',
    }, ['chat']);
    expect(result?.url.href).toBe(`ws://ann:s%C3%A9cret@127.0.0.1:${server.port}/path?q=1`);
    const [seen] = server.seen;
    expect(seen!.url).toBe('/path?q=1');
    expect(seen!.headers).toMatchObject({
      host: `127.0.0.1:${server.port}`,
      origin: 'https://app.example',
      'x-trace': 'abc',
      cookie: 'a=1; b=2',
      authorization: `Basic ${Buffer.from('ann:sécret').toString('base64')}`,
      'sec-websocket-protocol': 'chat',
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
    });
    const names = seen!.rawHeaders.filter((_, i) => i % 2 === 0);
    expect(names).toEqual(['Host', 'Upgrade', 'Connection', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Origin', 'X-Trace', 'Cookie', 'Cookie', 'Authorization']);
    expect(result?.extensions).toBe('permessage-deflate');
    expect(result?.compression).not.toBeNull();
  });

  it('lets an agent make the connection, plain and TLS (an IP address gets no server name)', async () => {
    const plain = await wsServer();
    const secure = await wsServer(true);
    const made: string[] = [];
    class CountingAgent extends Agent {
      override createConnection(...args: Parameters<Agent['createConnection']>): ReturnType<Agent['createConnection']> {
        made.push('http');
        return super.createConnection(...args);
      }
    }
    class CountingHttpsAgent extends HttpsAgent {
      override createConnection(...args: Parameters<HttpsAgent['createConnection']>): ReturnType<HttpsAgent['createConnection']> {
        made.push('https');
        return super.createConnection(...args);
      }
    }
    expect((await handshake(plain.url(), { agent: new CountingAgent() })).result).not.toBeNull();
    const tls = await handshake(secure.url(), { agent: new CountingHttpsAgent(), tls: { ca: cert } });
    expect(tls.error).toBeNull();
    expect(made).toEqual(['http', 'https']);
  });
});

describe('redirects', () => {
  it('are not followed by default, as browsers: the 3xx is the error', async () => {
    const target = await wsServer();
    const redirector = await rawServer(() => redirectTo(`${target.url()}/`));
    const { error } = await handshake(`ws://127.0.0.1:${redirector.port}/`);
    expect(error).toBeInstanceOf(UnexpectedResponseError);
    expect(error).toMatchObject({ status: 302, message: 'server answered the upgrade with 302 Moved' });
    expect(target.seen).toEqual([]);
  });

  it('with followRedirects, lead on (relative and absolute, http: as ws:), keeping credentials on the same host', async () => {
    const target = await wsServer();
    const hop2 = await rawServer(() => redirectTo(`http://127.0.0.1:${target.port}/final`, 307));
    const hop1 = await rawServer(() => redirectTo(`http://127.0.0.1:${hop2.port}/second`, 301));
    const { result, redirects } = await handshake(`ws://ann:pw@127.0.0.1:${hop1.port}/first`, {
      followRedirects: true,
      headers: { Cookie: 'sid=1', 'X-Trace': 't' },
    });
    expect(redirects).toEqual([`301 ws://127.0.0.1:${hop2.port}/second`, `307 ws://127.0.0.1:${target.port}/final`]);
    expect(result?.url.href).toBe(`ws://127.0.0.1:${target.port}/final`);
    // Another port is another host: Authorization and Cookie stayed behind at the first hop.
    expect(hop1.requests[0]!.headers).toMatchObject({ authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}`, cookie: 'sid=1' });
    expect(hop2.requests[0]!.headers.authorization).toBeUndefined();
    expect(hop2.requests[0]!.headers.cookie).toBeUndefined();
    expect(target.seen[0]!.headers['x-trace']).toBe('t');

    const sameHost = await rawServer((req) => (req.url === '/old' ? redirectTo('/new') : 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
    // The second request is refused: only the headers it carried matter here.
    expect((await handshake(`ws://127.0.0.1:${sameHost.port}/old`, { followRedirects: true, headers: { Authorization: 'Bearer t' } })).error).toMatchObject({ status: 403 });
    expect(sameHost.requests.map((r) => [r.url, r.headers.authorization])).toEqual([
      ['/old', 'Bearer t'],
      ['/new', 'Bearer t'],
    ]);
  });

  it('stop at maxRedirects, at a Location that is no WebSocket URL, and within one handshakeTimeout over all hops', async () => {
    const loop = await rawServer(() => redirectTo('/again'));
    const looped = await handshake(`ws://127.0.0.1:${loop.port}/`, { followRedirects: true, maxRedirects: 2 });
    expect(looped.error?.message).toBe('more than 2 redirects (maxRedirects)');
    expect(loop.requests).toHaveLength(3);

    const ftp = await rawServer(() => redirectTo('ftp://127.0.0.1/'));
    expect((await handshake(`ws://127.0.0.1:${ftp.port}/`, { followRedirects: true })).error).toBeInstanceOf(SyntaxError);

    const silent = await rawServer(() => null);
    const toSilent = await rawServer(() => redirectTo(`ws://127.0.0.1:${silent.port}/`));
    const started = Date.now();
    const timedOut = await handshake(`ws://127.0.0.1:${toSilent.port}/`, { followRedirects: true, handshakeTimeout: 0.3 });
    expect(timedOut.error?.message).toBe('opening handshake timed out after 0.3 s');
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('responses that fail the connection (RFC 6455 §4.1)', () => {
  const upgradeWith = (extra: (req: IncomingMessage) => string) => (req: IncomingMessage): string =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${extra(req)}\r\n`;

  it('a wrong Sec-WebSocket-Accept, an extension or subprotocol not offered', async () => {
    const accept = (req: IncomingMessage): string => `Sec-WebSocket-Accept: ${computeAcceptKey(String(req.headers['sec-websocket-key']))}\r\n`;
    const wrongAccept = await rawServer(upgradeWith(() => 'Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n'));
    const extension = await rawServer(upgradeWith((req) => `${accept(req)}Sec-WebSocket-Extensions: permessage-deflate\r\n`));
    const protocol = await rawServer(upgradeWith((req) => `${accept(req)}Sec-WebSocket-Protocol: other\r\n`));
    const outcomes = await Promise.all([
      handshake(`ws://127.0.0.1:${wrongAccept.port}/`),
      handshake(`ws://127.0.0.1:${extension.port}/`, { perMessageDeflate: false }),
      handshake(`ws://127.0.0.1:${protocol.port}/`, {}, ['chat']),
    ]);
    for (const { error } of outcomes) expect(error).toBeInstanceOf(HandshakeError);
    expect(outcomes.map((o) => o.error?.message)).toEqual([
      'WebSocket handshake failed: the Sec-WebSocket-Accept header does not match the key',
      'WebSocket handshake failed: the server sent Sec-WebSocket-Extensions that were not offered',
      'WebSocket handshake failed: the server selected a subprotocol that was not offered',
    ]);
  });
});

describe('through a CONNECT proxy', () => {
  it('reaches ws:// and wss:// servers, with the proxy credentials from its URL', async () => {
    const proxy = await startConnectProxy({ credentials: 'proxyuser:pw' });
    closers.push(() => proxy.close());
    const plain = await wsServer();
    const secure = await wsServer(true);
    const via = proxy.url.replace('http://', 'http://proxyuser:pw@');
    const a = await handshake(plain.url(), { proxy: via });
    const b = await handshake(`${secure.url('localhost')}/tls`, { proxy: via, tls: { ca: cert } });
    expect(a.error).toBeNull();
    expect(b.error).toBeNull();
    expect(proxy.tunnels.map((t) => t.authority)).toEqual([`127.0.0.1:${plain.port}`, `localhost:${secure.port}`]);
    // The proxy's credentials went to the proxy only.
    expect(plain.seen[0]!.headers['proxy-authorization']).toBeUndefined();
    expect(secure.seen[0]!.url).toBe('/tls');
    expect(proxy.openTunnels()).toBe(2);
    (a.result!.socket as Socket).destroy();
    (b.result!.socket as Socket).destroy();
    const deadline = Date.now() + 5000;
    while (proxy.openTunnels() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(proxy.openTunnels()).toBe(0);
  });

  it('fails with the proxy refusal (407) without reaching the server', async () => {
    const proxy = await startConnectProxy({ credentials: 'proxyuser:pw' });
    closers.push(() => proxy.close());
    const server = await wsServer();
    const { error } = await handshake(server.url(), { proxy: proxy.url });
    expect(error).toMatchObject({ status: 407, fromProxy: true });
    expect(server.seen).toEqual([]);
  });
});
