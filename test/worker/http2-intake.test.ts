/**
 * Http2Intake's own decisions, with Node's http2 client over real TLS sockets: the worker's kind
 * of TLSSocket (made directly over an accepted socket, as socket-intake.ts makes it) handed to the
 * intake once ALPN chose h2. End to end through a whole server: test/e2e/http2.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { connect as http2Connect, constants } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { readFileSync } from 'node:fs';
import { TLSSocket } from 'node:tls';
import type { App } from '../../src/shared/app.ts';
import type { ServerOptions } from '../../src/shared/config.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { Counter } from '../../src/shared/worker-counters.ts';
import { Http2Intake } from '../../src/worker/http2-intake.ts';
import { loadTlsContext } from '../../src/worker/tls-context.ts';
import { clientFrame, parseFrame } from '../e2e/helpers.ts';
import { intakeParts, until } from '../support/worker-fakes.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const ca = readFileSync(fixture('cert.pem'));
const tls = { certFile: fixture('cert.pem'), keyFile: fixture('key.pem') };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** What the app saw: each connection's close code. */
interface Seen {
  readonly closes: number[];
}

/** An echo app that records close codes; `hold` makes its upgrade wait until released. */
function echoApp(seen: Seen, hold: Promise<void> | null = null): App<unknown> {
  return {
    ...(hold === null
      ? {}
      : {
          async upgrade() {
            await hold;
            return { data: null };
          },
        }),
    message(ws, data, isBinary) {
      ws.send(data, { binary: isBinary });
    },
    close(_ws, code) {
      seen.closes.push(code);
    },
  };
}

/** An Http2Intake behind a loopback TLS listener that offers h2 by ALPN; endpoints record each request. */
async function start(options: ServerOptions = {}, app?: (seen: Seen) => App<unknown>) {
  const config = resolveConfig({ logLevel: 'silent', http2: true, tls, ...options }, 1);
  const seen: Seen = { closes: [] };
  const { logger, counters, slot, endpoints, requests, connections, upgrade } = intakeParts(config, (app ?? echoApp)(seen));
  const intake = new Http2Intake({ config, logger, counters, slot, upgrade, endpoints, connections });
  const { socketOptions } = loadTlsContext(config.tls!, true);
  const listener: Server = createServer((plain) => {
    const secure = new TLSSocket(plain, { isServer: true, ...socketOptions });
    secure.on('error', () => {});
    secure.once('secure', () => (secure.alpnProtocol === 'h2' ? intake.adopt(secure) : secure.destroy()));
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const port = (listener.address() as AddressInfo).port;
  const sessions: ClientHttp2Session[] = [];
  cleanups.push(() => {
    for (const session of sessions) session.destroy();
    for (const connection of connections) connection.terminate();
    intake.closeAll();
    listener.close();
  });
  /** A client session, once the server's SETTINGS arrived. */
  const session = async () => {
    const client = http2Connect(`https://localhost:${port}`, { ca });
    client.on('error', () => {});
    sessions.push(client);
    await once(client, 'remoteSettings');
    return client;
  };
  return { intake, slot, requests, connections, seen, session, port };
}

/** One stream as the test reads it: the answer, the body, frames, its end. */
class ClientStream {
  response: IncomingHttpHeaders | null = null;
  body = Buffer.alloc(0);
  closed = false;
  readonly stream: ClientHttp2Stream;

  constructor(stream: ClientHttp2Stream) {
    this.stream = stream;
    stream.on('response', (headers) => (this.response = headers));
    stream.on('data', (chunk: Buffer) => (this.body = Buffer.concat([this.body, chunk])));
    stream.on('close', () => (this.closed = true));
    stream.on('error', () => {});
  }

  get status(): number {
    return Number(this.response?.[':status']);
  }

  /** Sends a text message and waits for its echo. */
  async echo(text: string): Promise<string> {
    this.body = Buffer.alloc(0);
    this.stream.write(clientFrame(0x1, Buffer.from(text)));
    await until(() => parseFrame(this.body) !== null, `the echo of ${text}`);
    return parseFrame(this.body)!.frame.payload.toString();
  }
}

function connectFields(port: number, fields: Record<string, string | undefined>): Record<string, string> {
  const all: Record<string, string | undefined> = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': '/chat',
    ':authority': `localhost:${port}`,
    'sec-websocket-version': '13',
    ...fields,
  };
  return Object.fromEntries(Object.entries(all).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** Sends an extended CONNECT (fields set to undefined are left out) and waits for the answer or the stream's end. */
async function request(session: ClientHttp2Session, port: number, fields: Record<string, string | undefined> = {}): Promise<ClientStream> {
  const stream = new ClientStream(session.request(connectFields(port, fields), { endStream: false }));
  await until(() => stream.response !== null || stream.closed, 'the answer to a CONNECT');
  return stream;
}

/** Reads a refused stream to its end: the server resets it with NO_ERROR once the answer is complete (RFC 9113 §8.1). */
async function refusal(stream: ClientStream): Promise<string> {
  await until(() => stream.closed, 'the refused stream to close');
  expect(stream.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
  return stream.body.toString();
}

describe('Http2Intake', () => {
  it('advertises extended CONNECT and the stream limit, and turns a CONNECT into a connection on the stream', async () => {
    const { slot, connections, session, port } = await start({ http2MaxStreams: 3 });
    const client = await session();
    expect(client.remoteSettings.enableConnectProtocol).toBe(true);
    expect(client.remoteSettings.maxConcurrentStreams).toBe(3);
    const ws = await request(client, port);
    expect(ws.status).toBe(200);
    expect(ws.response!['sec-websocket-accept']).toBeUndefined();
    expect(await ws.echo('over a stream')).toBe('over a stream');
    expect(connections.size).toBe(1);
    expect(slot[Counter.Connections]).toBe(1);
    expect(slot[Counter.Handshakes]).toBe(0);
  });

  it('holds the streams of one session to http2MaxStreams: one more waits for a place', async () => {
    const { connections, session, port } = await start({ http2MaxStreams: 2 });
    const client = await session();
    const open = [await request(client, port), await request(client, port)];
    expect(open.map((ws) => ws.status)).toEqual([200, 200]);
    // The client keeps a third stream back at the limit the server advertised.
    const third = new ClientStream(client.request(connectFields(port, {}), { endStream: false }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(third.response).toBeNull();
    expect(third.closed).toBe(false);
    expect(connections.size).toBe(2);
    third.stream.close(constants.NGHTTP2_CANCEL);
    // Once one ends on both sides, a new stream has its place.
    open[0]!.stream.close(constants.NGHTTP2_CANCEL);
    await until(() => connections.size === 1 && open[0]!.closed, 'the reset stream to close its connection');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await request(client, port)).status).toBe(200);
    expect(await open[1]!.echo('still here')).toBe('still here');
  });

  it('refuses a stream with 503 at maxHandshakes and at maxConnections, and the session carries on', async () => {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    const held = await start({ maxHandshakes: 1 }, (seen) => echoApp(seen, hold));
    const client = await held.session();
    const first = new ClientStream(client.request(connectFields(held.port, {}), { endStream: false }));
    await until(() => held.slot[Counter.Handshakes] === 1, 'the first stream to count as a handshake');
    const second = await request(client, held.port);
    expect(second.status).toBe(503);
    expect(await refusal(second)).toBe('too many handshakes in progress');
    release();
    await until(() => first.response !== null, 'the held stream to be accepted');
    expect(first.status).toBe(200);
    expect(held.slot[Counter.Handshakes]).toBe(0);

    const full = await start({ maxConnections: 1 });
    const other = await full.session();
    expect((await request(other, full.port)).status).toBe(200);
    const over = await request(other, full.port);
    expect(over.status).toBe(503);
    expect(await refusal(over)).toBe('server is at maxConnections');
    expect(full.slot[Counter.Refused]).toBe(1);
    expect(full.connections.size).toBe(1);
  });

  it('answers bad extended CONNECTs with their statuses on the stream, and counts no handshake', async () => {
    const { slot, connections, session, port } = await start();
    const client = await session();
    const wrongVersion = await request(client, port, { 'sec-websocket-version': '8' });
    expect(wrongVersion.status).toBe(426);
    // RFC 9113 §8.2.2: no Upgrade field on HTTP/2; the version the server speaks instead.
    expect(wrongVersion.response!['sec-websocket-version']).toBe('13');
    expect(wrongVersion.response!.upgrade).toBeUndefined();
    expect((await request(client, port, { ':protocol': 'webtransport' })).status).toBe(400);
    expect((await request(client, port, { 'sec-websocket-protocol': 'a b' })).status).toBe(400);
    // A CONNECT without :protocol is HTTP/2's tunnel (RFC 9113 §8.5), not a WebSocket.
    expect((await request(client, port, { ':protocol': undefined, ':scheme': undefined, ':path': undefined })).status).toBe(400);
    expect(connections.size).toBe(0);
    await until(() => slot[Counter.Handshakes] === 0, 'the handshakes to end');
    expect(slot[Counter.HandshakesRejected]).toBeGreaterThanOrEqual(3);
    // The session survives its bad streams.
    expect((await request(client, port)).status).toBe(200);
  });

  it('hands plain requests to the HTTP endpoints on the same session as WebSockets', async () => {
    const { requests, connections, session, port } = await start();
    const client = await session();
    const ws = await request(client, port);
    const get = new ClientStream(client.request({ ':path': '/stats?x=1' }));
    await until(() => get.closed, 'the response');
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe('from the endpoints');
    const post = new ClientStream(client.request({ ':method': 'POST', ':path': '/hook' }));
    post.stream.end('body');
    await until(() => post.closed, 'the response');
    expect(post.status).toBe(200);
    expect(requests).toEqual(['GET /stats?x=1', 'POST /hook']);
    expect(connections.size).toBe(1);
    expect(await ws.echo('beside plain requests')).toBe('beside plain requests');
  });

  it('closes a session that carries no stream for handshakeTimeout, and keeps one that does', async () => {
    const { session, port } = await start({ handshakeTimeout: 0.3 });
    const idle = await session();
    const busy = await session();
    const ws = await request(busy, port);
    expect(ws.status).toBe(200);
    const [goaway] = (await once(idle, 'goaway')) as [number];
    expect(goaway).toBe(constants.NGHTTP2_NO_ERROR);
    await until(() => idle.closed || idle.destroyed, 'the idle session to close');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(busy.closed).toBe(false);
    expect(await ws.echo('kept')).toBe('kept');
  });

  it('closes a session once its last stream ends and it stays idle for handshakeTimeout', async () => {
    const { connections, session, port } = await start({ handshakeTimeout: 0.3 });
    const client = await session();
    const ws = await request(client, port);
    // Idle past the timeout with a WebSocket open: kept.
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect(client.closed).toBe(false);
    ws.stream.close(constants.NGHTTP2_CANCEL);
    await until(() => connections.size === 0, 'the connection to close');
    await until(() => client.closed || client.destroyed, 'the emptied session to close', 3000);
  });

  it('resets a stream whose upgrade outlasts handshakeTimeout, and forgets it as a handshake', async () => {
    const never = new Promise<void>(() => {});
    const { slot, connections, session, port } = await start({ handshakeTimeout: 0.2 }, (seen) => echoApp(seen, never));
    const client = await session();
    const stream = new ClientStream(client.request(connectFields(port, {}), { endStream: false }));
    await until(() => slot[Counter.Handshakes] === 1, 'the stream to count as a handshake');
    await until(() => stream.closed, 'the stream to be reset');
    expect(stream.stream.rstCode).toBe(constants.NGHTTP2_CANCEL);
    expect(slot[Counter.Handshakes]).toBe(0);
    expect(connections.size).toBe(0);
  });

  it('stops counting a stream reset by the client while its upgrade runs as a handshake', async () => {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    const { slot, connections, session, port } = await start({}, (seen) => echoApp(seen, hold));
    const client = await session();
    const stream = new ClientStream(client.request(connectFields(port, {}), { endStream: false }));
    await until(() => slot[Counter.Handshakes] === 1, 'the stream to count as a handshake');
    stream.stream.close(constants.NGHTTP2_CANCEL);
    await until(() => slot[Counter.Handshakes] === 0, 'the handshake to end with the stream');
    release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(connections.size).toBe(0);
    expect(slot[Counter.Connections]).toBe(0);
  });

  it('closes with 1006 only the WebSocket whose stream the client reset, and every one of a lost session', async () => {
    const { connections, seen, session, port } = await start();
    const first = await session();
    const second = await session();
    const [a, b] = [await request(first, port), await request(first, port)];
    const [c, d] = [await request(second, port), await request(second, port)];
    expect(connections.size).toBe(4);

    a.stream.close(constants.NGHTTP2_CANCEL);
    await until(() => seen.closes.length === 1, 'the reset WebSocket to close');
    expect(seen.closes).toEqual([1006]);
    expect(await b.echo('sibling')).toBe('sibling');

    first.destroy();
    await until(() => seen.closes.length === 2, 'the lost session to close its WebSocket');
    expect(seen.closes).toEqual([1006, 1006]);
    expect(connections.size).toBe(2);
    expect(await c.echo('other session')).toBe('other session');
    expect(await d.echo('other session')).toBe('other session');
  });

  it('sends GOAWAY to every session at stop, refuses new TLS sockets, and closeAll drops what is left with 1006', async () => {
    const { intake, connections, seen, session, port } = await start();
    const first = await session();
    const second = await session();
    const ws = await request(first, port);
    const goaways = [once(first, 'goaway'), once(second, 'goaway')];
    intake.stop();
    await Promise.all(goaways);
    // The idle session ends; the one with a WebSocket keeps it until the runtime closes it.
    await until(() => second.closed || second.destroyed, 'the idle session to close');
    expect(await ws.echo('after GOAWAY')).toBe('after GOAWAY');

    const late = http2Connect(`https://localhost:${port}`, { ca });
    let settings = false;
    late.on('error', () => {}).on('remoteSettings', () => (settings = true));
    await once(late, 'close');
    expect(settings).toBe(false);

    intake.closeAll();
    await until(() => connections.size === 0, 'the last connection to close');
    expect(seen.closes).toEqual([1006]);
  });
});
