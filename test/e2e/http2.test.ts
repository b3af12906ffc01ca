/**
 * WebSockets over HTTP/2 (RFC 8441) end to end, with Node's own http2 client speaking the RFC
 * directly: extended CONNECT streams carrying hand-made frames, on a TLS port that still serves
 * HTTP/1.1 upgrades.
 */
import { readFileSync } from 'node:fs';
import { connect as http2Connect, constants } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { constants as zlib, deflateRawSync, inflateRawSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { ListenOptions, ShardServer } from '../../src/index.ts';
import { resolveBenchOptions } from '../../bench/load/options.ts';
import { runLoad } from '../../bench/load/run-load.ts';
import { http2Sessions } from '../../src/client/http2-sessions.ts';
import { WebSocket as ShardWebSocket } from '../../src/client/websocket.ts';
import type { ClientOptions } from '../../src/client/client-options.ts';
import { createSecureServer } from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import { cleanup, clientFrame, fixtureApp, parseFrame, startServer, waitFor, withTimeout } from './helpers.ts';
import type { RawFrame } from './helpers.ts';

const tlsFixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const ca = readFileSync(tlsFixture('cert.pem'));
const tls = { certFile: tlsFixture('cert.pem'), keyFile: tlsFixture('key.pem') };

const sessions = new Set<ClientHttp2Session>();
const upstreams = new Set<WebSocketServer>();
afterEach(async () => {
  for (const upstream of upstreams) upstream.close();
  upstreams.clear();
  for (const session of sessions) session.destroy();
  sessions.clear();
  await cleanup();
});

async function startH2(options: ListenOptions = {}): Promise<ShardServer> {
  return startServer({ app: fixtureApp('h2-probe'), http2: true, tls, ...options });
}

async function openSession(server: ShardServer): Promise<ClientHttp2Session> {
  const session = http2Connect(`https://localhost:${server.address().port}`, { ca });
  sessions.add(session);
  session.on('error', () => {});
  await withTimeout(new Promise((resolve) => session.once('remoteSettings', resolve)), 'the server SETTINGS');
  return session;
}

/** One WebSocket on a stream: the request's answer, and the frames read off the stream. */
class StreamSocket {
  readonly stream: ClientHttp2Stream;
  response: IncomingHttpHeaders | null = null;
  buffered = Buffer.alloc(0);
  ended = false;
  closed = false;

  constructor(stream: ClientHttp2Stream) {
    this.stream = stream;
    stream.on('response', (headers) => (this.response = headers));
    stream.on('data', (chunk: Buffer) => (this.buffered = Buffer.concat([this.buffered, chunk])));
    stream.on('end', () => (this.ended = true));
    stream.on('close', () => (this.closed = true));
    stream.on('error', () => {});
  }

  static async open(session: ClientHttp2Session, path = '/echo', fields: Record<string, string> = {}): Promise<StreamSocket> {
    const socket = new StreamSocket(session.request(connectFields(session, path, fields), { endStream: false }));
    await waitFor(() => socket.response !== null || socket.closed, 'the CONNECT answer');
    return socket;
  }

  get status(): number {
    return Number(this.response?.[':status']);
  }

  send(opcode: number, payload: Buffer | string, options: { rsv1?: boolean } = {}): void {
    const frame = clientFrame(opcode, Buffer.from(payload));
    if (options.rsv1 === true) frame[0]! |= 0x40;
    this.stream.write(frame);
  }

  async nextFrame(timeout = 5000): Promise<RawFrame> {
    let parsed: { frame: RawFrame; size: number } | null = null;
    await waitFor(() => (parsed = parseFrame(this.buffered)) !== null || this.closed, 'a frame', timeout);
    if (parsed === null) throw new Error('stream closed before a complete frame arrived');
    const { frame, size } = parsed as { frame: RawFrame; size: number };
    this.buffered = this.buffered.subarray(size);
    return frame;
  }

  async nextText(): Promise<string> {
    return (await this.nextFrame()).payload.toString();
  }

  /** Reads texts until one satisfies `match`. */
  async textMatching(match: (text: string) => boolean, what: string): Promise<string> {
    for (let i = 0; i < 1000; i++) {
      const text = await this.nextText();
      if (match(text)) return text;
    }
    throw new Error(`no message ${what}`);
  }
}

function connectFields(session: ClientHttp2Session, path: string, fields: Record<string, string>): Record<string, string> {
  return {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': path,
    ':authority': `localhost:${(session.socket as unknown as { remotePort: number }).remotePort}`,
    'sec-websocket-version': '13',
    ...fields,
  };
}

describe('WebSockets over HTTP/2 (RFC 8441)', () => {
  it('offers h2 and http/1.1 by ALPN and advertises SETTINGS_ENABLE_CONNECT_PROTOCOL and the stream limit', async () => {
    const server = await startH2({ http2MaxStreams: 7 });
    for (const [offer, chosen] of [
      [['h2', 'http/1.1'], 'h2'],
      [['http/1.1'], 'http/1.1'],
    ] as const) {
      const socket = tlsConnect({ port: server.address().port, host: '127.0.0.1', servername: 'localhost', ca, ALPNProtocols: [...offer] });
      await withTimeout(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)), 'TLS');
      expect(socket.alpnProtocol).toBe(chosen);
      socket.destroy();
    }
    const session = await openSession(server);
    expect(session.remoteSettings.enableConnectProtocol).toBe(true);
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
  });

  it('opens with :status 200 and no Sec-WebSocket-Accept, through upgrade(req), and echoes text and binary', async () => {
    const server = await startH2();
    const session = await openSession(server);
    const ws = await StreamSocket.open(session, '/room/1?x=2', { 'sec-websocket-protocol': 'other, chat' });
    expect(ws.status).toBe(200);
    expect(ws.response!['sec-websocket-accept']).toBeUndefined();
    expect(ws.response!['sec-websocket-protocol']).toBe('chat');
    expect(ws.response!['x-probe']).toBe('yes');
    const hello = JSON.parse(await ws.nextText()) as Record<string, unknown>;
    expect(hello).toMatchObject({ method: 'CONNECT', url: '/room/1?x=2', offered: ['other', 'chat'], protocol: 'chat', extensions: '', authority: `localhost:${server.address().port}` });

    ws.send(0x1, 'héllo over h2');
    const text = await ws.nextFrame();
    expect([text.opcode, text.payload.toString()]).toEqual([0x1, 'héllo over h2']);
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    ws.send(0x2, bytes);
    const binary = await ws.nextFrame();
    expect([binary.opcode, binary.payload]).toEqual([0x2, bytes]);
    // A large message crosses many DATA frames and flow-control windows.
    const large = Buffer.alloc(300_000, 0x5a);
    ws.send(0x2, large);
    expect((await ws.nextFrame()).payload.equals(large)).toBe(true);
  });

  it('negotiates permessage-deflate in the headers and inflates and deflates on the stream', async () => {
    const server = await startH2({ deflate: { threshold: 0 } });
    const session = await openSession(server);
    const ws = await StreamSocket.open(session, '/echo', { 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' });
    expect(ws.status).toBe(200);
    expect(ws.response!['sec-websocket-extensions']).toMatch(/^permessage-deflate/);
    await ws.nextText();
    const message = 'compress me '.repeat(100);
    // RFC 7692 §7.2.1: a sync-flushed block without its 00 00 ff ff tail.
    const compressed = deflateRawSync(Buffer.from(message), { finishFlush: zlib.Z_SYNC_FLUSH }).subarray(0, -4);
    ws.send(0x1, compressed, { rsv1: true });
    const echoed = await ws.nextFrame();
    expect(echoed.rsv1).toBe(true);
    expect(inflateRawSync(Buffer.concat([echoed.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.Z_SYNC_FLUSH }).toString()).toBe(message);
  });

  it('answers pings and completes the closing handshake with END_STREAM', async () => {
    const server = await startH2();
    const session = await openSession(server);
    const ws = await StreamSocket.open(session);
    await ws.nextText();
    ws.send(0x9, 'are you there');
    const pong = await ws.nextFrame();
    expect([pong.opcode, pong.payload.toString()]).toEqual([0xa, 'are you there']);
    ws.send(0x8, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]));
    const close = await ws.nextFrame();
    expect([close.opcode, close.payload.readUInt16BE(0)]).toEqual([0x8, 1000]);
    // The server ends its side (END_STREAM, RFC 8441 §5's FIN); ours ends the stream.
    await waitFor(() => ws.ended, 'END_STREAM from the server');
    ws.stream.end();
    await waitFor(() => ws.closed, 'the stream to close');
    expect(ws.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    // The session carries on.
    const next = await StreamSocket.open(session);
    expect(next.status).toBe(200);
  });

  it('multiplexes many WebSockets on one session, with pub/sub between them', async () => {
    const server = await startH2();
    const session = await openSession(server);
    const sockets = await Promise.all(Array.from({ length: 20 }, () => StreamSocket.open(session)));
    for (const ws of sockets) await ws.nextText();
    await Promise.all(
      sockets.map(async (ws, i) => {
        ws.send(0x1, `echo ${i}`);
        expect(await ws.nextText()).toBe(`echo ${i}`);
      }),
    );
    sockets[0]!.send(0x1, 'pub to everyone');
    for (const ws of sockets.slice(1)) expect(await ws.nextText()).toBe('to everyone');
  });

  it('closes only the WebSocket whose stream the peer resets; a lost session closes its WebSockets with 1006', async () => {
    const server = await startH2();
    const observerSession = await openSession(server);
    const observer = await StreamSocket.open(observerSession);
    await observer.nextText();
    const session = await openSession(server);
    const [a, b] = await Promise.all([StreamSocket.open(session), StreamSocket.open(session)]);
    await a!.nextText();
    await b!.nextText();

    a!.stream.close(constants.NGHTTP2_CANCEL);
    expect(await observer.textMatching((t) => t.startsWith('closed'), 'about a closing')).toBe('closed 1006');
    b!.send(0x1, 'still here');
    expect(await b!.textMatching((t) => !t.startsWith('closed'), 'echoed')).toBe('still here');

    session.destroy();
    expect(await observer.textMatching((t) => t.startsWith('closed'), 'about a closing')).toBe('closed 1006');
  });

  it('applies per-stream flow control: sends answer buffered while the client reads nothing, and drain follows', async () => {
    const server = await startH2();
    const session = await openSession(server);
    const ws = await StreamSocket.open(session);
    await ws.nextText();
    ws.stream.pause();
    ws.send(0x1, 'flood 64');
    // 1 MiB against a 64 KiB stream window: the app's sends must have been told to wait.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(ws.buffered.length).toBeLessThan(256 * 1024);
    ws.stream.resume();
    const report = await ws.textMatching((t) => t.startsWith('flooded'), 'reporting the flood');
    const [, sent, buffered] = report.split(' ').map(Number);
    expect(sent).toBe(64);
    expect(buffered).toBeGreaterThan(0);
    expect(await ws.textMatching((t) => t === 'drained', 'saying drained')).toBe('drained');
  });

  it('refuses bad requests with the status the RFCs give, and keeps the session', async () => {
    const server = await startH2();
    const session = await openSession(server);
    const statusOf = async (fields: Record<string, string>, drop: readonly string[] = []): Promise<{ status: number; headers: IncomingHttpHeaders }> => {
      const request = { ...connectFields(session, '/echo', {}), ...fields };
      for (const name of drop) delete (request as Record<string, string>)[name];
      const stream = session.request(request, { endStream: false });
      stream.on('error', () => {});
      const headers = await withTimeout(new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve)), 'an answer');
      stream.close();
      return { status: Number(headers[':status']), headers };
    };
    // A CONNECT without :protocol asks for a tunnel (RFC 9113 §8.5): not what this server does.
    expect((await statusOf({}, [':protocol', ':path', ':scheme'])).status).toBe(400);
    expect((await statusOf({ ':protocol': 'webtransport' })).status).toBe(400);
    // RFC 8441 §5 keeps RFC 6455 §4.2.2's version rule: 426 naming version 13.
    const wrongVersion = await statusOf({ 'sec-websocket-version': '8' });
    expect(wrongVersion.status).toBe(426);
    expect(wrongVersion.headers['sec-websocket-version']).toBe('13');
    expect((await statusOf({}, ['sec-websocket-version'])).status).toBe(426);
    expect((await statusOf({ 'sec-websocket-protocol': 'a b' })).status).toBe(400);
    expect((await StreamSocket.open(session)).status).toBe(200);
  });

  it('serves plain HTTP/2 requests through the app’s http hook, and HTTP/1.1 upgrades on the same port', async () => {
    const server = await startH2();
    const session = await openSession(server);
    const get = session.request({ ':method': 'GET', ':path': '/page?q=1' });
    let body = '';
    get.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    const headers = await withTimeout(new Promise<IncomingHttpHeaders>((resolve) => get.once('response', resolve)), 'a GET answer');
    await withTimeout(new Promise((resolve) => get.once('end', resolve)), 'the body');
    expect([headers[':status'], body]).toEqual([200, 'http 2.0 GET /page?q=1']);

    const ws = new WebSocket(`wss://localhost:${server.address().port}/echo`, { ca });
    const hello = await withTimeout(new Promise<string>((resolve, reject) => ws.once('message', (data) => resolve(String(data))).once('error', reject)), 'the HTTP/1.1 greeting');
    expect(JSON.parse(hello)).toMatchObject({ method: 'GET', url: '/echo' });
    ws.send('over http/1.1');
    expect(await withTimeout(new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data)))), 'the echo')).toBe('over http/1.1');
    ws.terminate();
  });

  it('sends GOAWAY on shutdown and closes the WebSockets with 1001', async () => {
    const server = await startH2({ shutdownGrace: 5 });
    const session = await openSession(server);
    const ws = await StreamSocket.open(session);
    await ws.nextText();
    let goaway = false;
    session.once('goaway', () => (goaway = true));
    const closing = server.close();
    const close = await ws.nextFrame();
    expect([close.opcode, close.payload.readUInt16BE(0)]).toEqual([0x8, 1001]);
    ws.send(0x8, Buffer.from([0x03, 0xe9]));
    ws.stream.end();
    await closing;
    expect(goaway).toBe(true);
  });

  it('proxies a stream in message mode to an HTTP/1.1 upstream (ws), and refuses passthrough with 502', async () => {
    const upstream = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    upstreams.add(upstream);
    upstream.on('connection', (socket, req) => {
      socket.send(`upstream saw ${req.url} from ${String(req.headers['x-forwarded-proto'])}`);
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    });
    await new Promise((resolve) => upstream.once('listening', resolve));
    const upstreamUrl = `ws://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    const server = await startServer({ http2: true, tls, app: undefined, routes: { '/relay/*': { proxy: { url: upstreamUrl } }, '/splice': { proxy: { url: upstreamUrl, mode: 'passthrough' } } } });
    const session = await openSession(server);
    const ws = await StreamSocket.open(session, '/relay/x?y=1');
    expect(ws.status).toBe(200);
    expect(await ws.nextText()).toBe('upstream saw /relay/x?y=1 from https');
    ws.send(0x1, 'through the gateway');
    expect(await ws.nextText()).toBe('through the gateway');
    expect((await StreamSocket.open(session, '/splice')).status).toBe(502);
  });

  it('counts streams against maxConnections (503 past it) and closes a connection that carries nothing for handshakeTimeout', async () => {
    const limited = await startH2({ maxConnections: 2, workers: 1 });
    const session = await openSession(limited);
    const open = [await StreamSocket.open(session), await StreamSocket.open(session)];
    expect(open.map((ws) => ws.status)).toEqual([200, 200]);
    expect((await StreamSocket.open(session)).status).toBe(503);

    const quick = await startH2({ handshakeTimeout: 1 });
    const busy = await openSession(quick);
    const ws = await StreamSocket.open(busy);
    const idle = await openSession(quick);
    let closed = false;
    idle.once('close', () => (closed = true));
    await waitFor(() => closed, 'the idle HTTP/2 connection to be closed', 5000);
    // The busy one is kept.
    ws.send(0x1, 'still open');
    expect(await ws.textMatching((t) => t === 'still open', 'echoed')).toBe('still open');
  });

  it('is refused without tls', async () => {
    await expect(startServer({ http2: true })).rejects.toThrow(/http2 needs tls/);
  });
});

/** Our client's WebSocket with its events collected. */
class OurClient {
  readonly ws: ShardWebSocket;
  readonly messages: string[] = [];
  error: Error | null = null;
  closed: { code: number; reason: string } | null = null;
  opened = false;

  constructor(url: string, protocols: string[] = [], options: ClientOptions = {}) {
    this.ws = new ShardWebSocket(url, protocols, { http2: true, tls: { ca }, ...options });
    this.ws.addEventListener('open', () => (this.opened = true));
    this.ws.addEventListener('message', (event) => this.messages.push(String((event as MessageEvent).data)));
    this.ws.addEventListener('error', (event) => (this.error = (event as unknown as { error: Error }).error));
    this.ws.addEventListener('close', (event) => (this.closed = { code: (event as CloseEvent).code, reason: (event as CloseEvent).reason }));
  }

  async message(index: number): Promise<string> {
    await waitFor(() => this.messages.length > index || this.closed !== null, `message ${index}`);
    if (this.messages.length <= index) throw new Error(`closed (${JSON.stringify(this.closed)}) before message ${index}`);
    return this.messages[index]!;
  }
}

describe('the shardws client and bench over HTTP/2', () => {
  it('multiplexes WebSockets over one pooled HTTP/2 connection per origin, with subprotocol and deflate', async () => {
    const server = await startH2({ deflate: true });
    const url = `wss://localhost:${server.address().port}`;
    const before = http2Sessions.size;
    const clients = Array.from({ length: 5 }, (_, i) => new OurClient(`${url}/c${i}`, ['chat']));
    for (const [i, client] of clients.entries()) {
      const hello = JSON.parse(await client.message(0)) as Record<string, unknown>;
      expect(hello).toMatchObject({ method: 'CONNECT', url: `/c${i}`, protocol: 'chat' });
      expect(client.ws.protocol).toBe('chat');
      expect(client.ws.extensions).toMatch(/^permessage-deflate/);
    }
    expect(http2Sessions.size).toBe(before + 1);
    for (const [i, client] of clients.entries()) client.ws.send(`hello ${i} `.repeat(50));
    for (const [i, client] of clients.entries()) expect(await client.message(1)).toBe(`hello ${i} `.repeat(50));
    clients[0]!.ws.close(4000, 'done');
    await waitFor(() => clients[0]!.closed !== null, 'the close');
    expect(clients[0]!.closed!.code).toBe(4000);
    expect(await clients[1]!.message(2)).toBe('closed 4000');
    // The others share the connection and carry on.
    clients[1]!.ws.send('after');
    expect(await clients[1]!.message(3)).toBe('after');
    for (const client of clients.slice(1)) client.ws.close();
    await waitFor(() => clients.every((client) => client.closed !== null), 'every close');
  });

  it('reports a refusal as an error with its status, and a server without ENABLE_CONNECT_PROTOCOL as an error too', async () => {
    const server = await startH2({ app: undefined, routes: { '/only': fixtureApp('h2-probe') } });
    const refused = new OurClient(`wss://localhost:${server.address().port}/elsewhere`);
    await waitFor(() => refused.closed !== null, 'the refusal');
    expect(refused.opened).toBe(false);
    expect(refused.error).toMatchObject({ status: 404 });
    expect(refused.closed!.code).toBe(1006);

    // A plain HTTP/2 server: it speaks h2 but never advertised extended CONNECT (RFC 8441 §3).
    const plain = createSecureServer({ cert: readFileSync(tlsFixture('cert.pem')), key: readFileSync(tlsFixture('key.pem')) });
    plain.on('stream', (stream: ServerHttp2Stream) => stream.respond({ ':status': 200 }));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const client = new OurClient(`wss://localhost:${(plain.address() as { port: number }).port}/`);
      await waitFor(() => client.closed !== null, 'the failure');
      expect(client.opened).toBe(false);
      expect(client.error?.message).toMatch(/ENABLE_CONNECT_PROTOCOL/);
    } finally {
      http2Sessions.closeAll();
      plain.close();
    }
  });

  it('shardws bench --http2 runs its echo over streams', async () => {
    // The demo app's /echo: nothing but echoes.
    const server = await startServer({ http2: true, tls });
    const result = await runLoad(
      resolveBenchOptions({ url: `wss://localhost:${server.address().port}/echo`, http2: true, insecure: true, connections: 4, inFlight: 2, duration: 0.5, warmup: 0, threads: 1 }),
    );
    expect(result.connections.opened).toBe(4);
    expect(result.errors, JSON.stringify(result)).toBe(0);
    expect(result.messages).toBeGreaterThan(0);
    expect(result.settings.http2).toBe(true);
  });
});
