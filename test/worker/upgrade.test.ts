import { describe, it, expect, afterEach, vi } from 'vitest';
import type { IncomingMessage } from 'node:http';
import type { App, Shard, UpgradeRequest } from '../../src/shared/app.ts';
import type { ServerConfig, ServerOptions } from '../../src/shared/config.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { PerMessageDeflate } from '../../src/shared/permessage-deflate.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';
import { ProxyGateway } from '../../src/worker/proxy-gateway.ts';
import type { Duplex } from 'node:stream';
import type { AcceptedConnection, HandshakeRequest } from '../../src/worker/upgrade.ts';
import { UpgradeHandler, fromIncomingMessage } from '../../src/worker/upgrade.ts';
import { RecordingSocket, silentLogger, singleRoute, testContext, testShard } from '../support/worker-fakes.ts';

const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

const shard: Shard = testShard({ id: 3, count: 4 });

/** An upgrade request as Node's HTTP parser hands it over. */
function request(headers: Record<string, string | undefined> = {}, overrides: { method?: string; url?: string; httpVersion?: string } = {}): IncomingMessage {
  const all: Record<string, string> = {
    host: 'example.com',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': RFC_KEY,
    'sec-websocket-version': '13',
  };
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) delete all[name];
    else all[name] = value;
  }
  return {
    method: overrides.method ?? 'GET',
    url: overrides.url ?? '/chat?room=1',
    httpVersion: overrides.httpVersion ?? '1.1',
    headers: all,
    socket: { remoteAddress: '203.0.113.9' },
  } as unknown as IncomingMessage;
}

const compressions: AcceptedConnection[] = [];
afterEach(() => {
  for (const accepted of compressions.splice(0)) accepted.compression?.close();
  vi.restoreAllMocks();
});

function upgradeHandler(config: ServerConfig, app: App<unknown>, counters: Float64Array): UpgradeHandler {
  const logger = silentLogger();
  return new UpgradeHandler(singleRoute(config, app, testContext(config, shard, logger, counters)), new ProxyGateway(logger), shard, logger, counters);
}

function handler(options: ServerOptions = {}, app: App<unknown> = {}) {
  const counters = new WorkerCounters(1).slot(0);
  const upgrade = upgradeHandler(resolveConfig(options, 1), app, counters);
  const run = async (req: IncomingMessage = request()) => {
    const socket = new RecordingSocket();
    const accepted = (await upgrade.handle(fromIncomingMessage(req), socket)) as AcceptedConnection | null;
    if (accepted !== null) compressions.push(accepted);
    return { accepted, socket };
  };
  return { counters, run };
}

/** The 101 head of an HTTP/1.1 acceptance. */
function headOf(accepted: AcceptedConnection): string {
  if (accepted.response.http2) throw new Error('an HTTP/2 answer where a 101 was expected');
  return accepted.response.head;
}

/** The status of the response a refused socket was sent (NaN when none). */
const statusOf = (socket: RecordingSocket): number => Number(/^HTTP\/1\.1 (\d{3}) /.exec(socket.text)?.[1]);

describe('UpgradeHandler', () => {
  it('accepts a valid request with a 101 carrying the RFC 6455 accept key, written by no one yet', async () => {
    const { counters, run } = handler();
    const { accepted, socket } = await run();
    expect(accepted).toMatchObject({
      kind: 'connection',
      data: undefined,
      protocol: '',
      extensions: '',
      compression: null,
      remoteAddress: '203.0.113.9',
      response: { http2: false, head: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${RFC_ACCEPT}\r\n\r\n` },
    });
    expect(socket.chunks).toEqual([]);
    expect(socket.ended).toBe(false);
    expect(counters[Counter.HandshakesTotal]).toBe(1);
    expect(counters[Counter.HandshakesRejected]).toBe(0);
  });

  it('refuses another version with 426 naming version 13, and counts the rejection', async () => {
    const { counters, run } = handler();
    const { accepted, socket } = await run(request({ 'sec-websocket-version': '8' }));
    expect(accepted).toBeNull();
    expect(statusOf(socket)).toBe(426);
    expect(socket.text).toContain('\r\nSec-WebSocket-Version: 13\r\n');
    expect(socket.ended).toBe(true);
    expect(counters[Counter.HandshakesTotal]).toBe(1);
    expect(counters[Counter.HandshakesRejected]).toBe(1);
  });

  it('refuses malformed requests with the status the handshake names', async () => {
    const { counters, run } = handler();
    expect(statusOf((await run(request({}, { method: 'POST' }))).socket)).toBe(405);
    expect(statusOf((await run(request({ 'sec-websocket-key': 'short' }))).socket)).toBe(400);
    expect(statusOf((await run(request({ upgrade: undefined }))).socket)).toBe(426);
    expect(counters[Counter.HandshakesTotal]).toBe(3);
    expect(counters[Counter.HandshakesRejected]).toBe(3);
  });

  it('refuses an origin that is not listed (or none) with 403 and accepts a listed one', async () => {
    const { counters, run } = handler({ origins: ['https://good.example'] });
    const bad = await run(request({ origin: 'https://evil.example' }));
    expect(bad.accepted).toBeNull();
    expect(statusOf(bad.socket)).toBe(403);
    const none = await run(request());
    expect(statusOf(none.socket)).toBe(403);
    const good = await run(request({ origin: 'https://good.example' }));
    expect(good.accepted).not.toBeNull();
    expect(good.socket.chunks).toEqual([]);
    expect(counters[Counter.HandshakesTotal]).toBe(3);
    expect(counters[Counter.HandshakesRejected]).toBe(2);
  });

  it('negotiates permessage-deflate in shared mode: no context on either side', async () => {
    const { run } = handler({ deflate: 'shared' });
    const { accepted } = await run(request({ 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(accepted!.extensions).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover');
    expect(headOf(accepted!)).toContain(`\r\nSec-WebSocket-Extensions: ${accepted!.extensions}\r\n`);
    const compression = accepted!.compression!;
    expect(compression).not.toBeNull();
    expect(compression.window).toBe(15);
    expect(compression.compressSync).not.toBeNull();
    expect(compression.threshold).toBe(resolveConfig({ deflate: 'shared' }, 1).deflate!.threshold);
  });

  it('negotiates permessage-deflate in dedicated mode: context kept', async () => {
    const { run } = handler({ deflate: { mode: 'dedicated', threshold: 10 } });
    const { accepted } = await run(request({ 'sec-websocket-extensions': 'permessage-deflate' }));
    expect(accepted!.extensions).toBe('permessage-deflate');
    const compression = accepted!.compression!;
    // The connection's own zlib context, kept between messages, on the worker's thread.
    expect(compression.compressSync).not.toBeNull();
    expect(compression.syncLimit).toBe(Infinity);
    expect(compression.threshold).toBe(10);
  });

  it('negotiates each side as the deflate option says, with the windows it sets', async () => {
    const { run } = handler({ deflate: { compressor: 'dedicated', decompressor: 'shared', serverMaxWindowBits: 11, clientMaxWindowBits: 10 } });
    const offered = await run(request({ 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(offered.accepted!.extensions).toBe('permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10');
    expect(offered.accepted!.compression!.window).toBe(11);
    const asked = await run(request({ 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9' }));
    expect(asked.accepted!.extensions).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9');
    expect(asked.accepted!.compression!.window).toBe(9);
  });

  it('leaves compression off when the server has it off or the client offers nothing acceptable', async () => {
    const off = await handler().run(request({ 'sec-websocket-extensions': 'permessage-deflate' }));
    expect(off.accepted).toMatchObject({ extensions: '', compression: null });
    expect(headOf(off.accepted!)).not.toContain('Extensions');
    const other = await handler({ deflate: true }).run(request({ 'sec-websocket-extensions': 'x-webkit-deflate-frame' }));
    expect(other.accepted).toMatchObject({ extensions: '', compression: null });
  });

  it('refuses a malformed extension header with 400 when deflate is on', async () => {
    const { counters, run } = handler({ deflate: true });
    const { accepted, socket } = await run(request({ 'sec-websocket-extensions': 'permessage-deflate; =' }));
    expect(accepted).toBeNull();
    expect(statusOf(socket)).toBe(400);
    expect(counters[Counter.HandshakesRejected]).toBe(1);
  });
});

describe('UpgradeHandler with an app upgrade hook', () => {
  it('passes the request and the shard to the hook, and its data, protocol and headers through', async () => {
    const seen: { req: UpgradeRequest; shard: Shard }[] = [];
    const req = request({ 'sec-websocket-protocol': 'superchat, chat' });
    const { run } = handler(
      {},
      {
        upgrade(r, s) {
          seen.push({ req: r, shard: s });
          return { data: { user: 'alice' }, protocol: 'chat', headers: { 'X-Shard': String(s.id), 'X-Skipped': undefined } };
        },
      },
    );
    const { accepted } = await run(req);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.shard).toBe(shard);
    expect(seen[0]!.req).toMatchObject({
      method: 'GET',
      url: '/chat?room=1',
      remoteAddress: '203.0.113.9',
      protocols: ['superchat', 'chat'],
    });
    expect(seen[0]!.req.raw).toBe(req);
    expect(seen[0]!.req.headers).toBe(req.headers);
    expect(accepted).toMatchObject({ data: { user: 'alice' }, protocol: 'chat' });
    expect(headOf(accepted!)).toContain('\r\nSec-WebSocket-Protocol: chat\r\n');
    expect(headOf(accepted!)).toContain('\r\nX-Shard: 3\r\n');
    expect(headOf(accepted!)).not.toContain('X-Skipped');
  });

  it('answers no subprotocol when the hook picks none, even if the client offered some', async () => {
    const { run } = handler({}, { upgrade: () => ({ data: 1 }) });
    const { accepted } = await run(request({ 'sec-websocket-protocol': 'chat' }));
    expect(accepted).toMatchObject({ data: 1, protocol: '' });
    expect(headOf(accepted!)).not.toContain('Sec-WebSocket-Protocol');
  });

  it('waits for an async hook', async () => {
    const { run } = handler(
      {},
      {
        async upgrade() {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return { data: 'later' };
        },
      },
    );
    expect((await run()).accepted).toMatchObject({ data: 'later' });
  });

  it('refuses with the status, message and headers of a rejection, closing the negotiated codec', async () => {
    const close = vi.spyOn(PerMessageDeflate.prototype, 'close');
    const { counters, run } = handler(
      { deflate: true },
      { upgrade: () => ({ reject: 401, message: 'token required', headers: { 'WWW-Authenticate': 'Bearer', 'X-Skipped': undefined } }) },
    );
    const { accepted, socket } = await run(request({ 'sec-websocket-extensions': 'permessage-deflate' }));
    expect(accepted).toBeNull();
    expect(statusOf(socket)).toBe(401);
    expect(socket.text).toContain('\r\nWWW-Authenticate: Bearer\r\n');
    expect(socket.text).not.toContain('X-Skipped');
    expect(socket.text.endsWith('\r\n\r\ntoken required')).toBe(true);
    expect(counters[Counter.HandshakesRejected]).toBe(1);
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('answers 500 when the hook rejects with a status or headers no response can carry', async () => {
    for (const rejection of [{ reject: 402 }, { reject: 401, headers: { 'WWW-Authenticate': 'Basic realm="café"' } }, { reject: 403, headers: { 'Content-Length': '5' } }]) {
      const { counters, run } = handler({}, { upgrade: () => rejection as never });
      const { accepted, socket } = await run();
      expect(accepted).toBeNull();
      expect(statusOf(socket)).toBe(500);
      expect(socket.text).not.toContain('café');
      expect(counters[Counter.HandshakesRejected]).toBe(1);
    }
  });

  it('answers 500 when the hook throws, sync or async', async () => {
    const sync = handler({}, { upgrade: () => { throw new Error('boom'); } });
    const thrown = await sync.run();
    expect(thrown.accepted).toBeNull();
    expect(statusOf(thrown.socket)).toBe(500);
    expect(thrown.socket.text.endsWith('Internal Server Error')).toBe(true);
    expect(thrown.socket.text).not.toContain('boom');
    expect(sync.counters[Counter.HandshakesRejected]).toBe(1);

    const rejected = await handler({}, { upgrade: () => Promise.reject(new Error('boom')) }).run();
    expect(statusOf(rejected.socket)).toBe(500);
  });

  it('answers 500 when the hook picks a subprotocol the client did not offer', async () => {
    const close = vi.spyOn(PerMessageDeflate.prototype, 'close');
    const { counters, run } = handler({ deflate: true }, { upgrade: () => ({ protocol: 'mqtt' }) });
    const { accepted, socket } = await run(request({ 'sec-websocket-protocol': 'chat', 'sec-websocket-extensions': 'permessage-deflate' }));
    expect(accepted).toBeNull();
    expect(statusOf(socket)).toBe(500);
    expect(counters[Counter.HandshakesRejected]).toBe(1);
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('answers 500 when the hook adds a header that is invalid or overrides the handshake', async () => {
    const injected = await handler({}, { upgrade: () => ({ headers: { 'X-A': 'v\r\nSet-Cookie: evil=1' } }) }).run();
    expect(injected.accepted).toBeNull();
    expect(statusOf(injected.socket)).toBe(500);
    expect(injected.socket.text).not.toContain('evil');
    const override = await handler({}, { upgrade: () => ({ headers: { 'Sec-WebSocket-Accept': 'x' } }) }).run();
    expect(statusOf(override.socket)).toBe(500);
  });

  it('gives up without writing anything when the socket closed while the hook ran', async () => {
    const close = vi.spyOn(PerMessageDeflate.prototype, 'close');
    const counters = new WorkerCounters(1).slot(0);
    const socket = new RecordingSocket();
    const upgrade = upgradeHandler(
      resolveConfig({ deflate: true }, 1),
      {
        async upgrade() {
          socket.destroy();
          return { data: 1 };
        },
      },
      counters,
    );
    expect(await upgrade.handle(fromIncomingMessage(request({ 'sec-websocket-extensions': 'permessage-deflate' })), socket)).toBeNull();
    expect(socket.chunks).toEqual([]);
    expect(close).toHaveBeenCalledTimes(1);
    expect(counters[Counter.HandshakesTotal]).toBe(1);
    expect(counters[Counter.HandshakesRejected]).toBe(0);
  });

  describe('upgradeAborted: the app accepted, the connection never opens', () => {
    const aborting = (upgrade: App<unknown>['upgrade'], onAbort: App<unknown>['upgradeAborted'] = vi.fn()) => {
      const app: App<unknown> = { upgrade, upgradeAborted: onAbort };
      return { app, onAbort: onAbort as ReturnType<typeof vi.fn> };
    };

    it('gets the request and the data when the client went away while upgrade ran', async () => {
      const socket = new RecordingSocket();
      const { app, onAbort } = aborting(async () => {
        socket.destroy();
        return { data: { session: 42 } };
      });
      const upgrade = upgradeHandler(resolveConfig({}, 1), app, new WorkerCounters(1).slot(0));
      expect(await upgrade.handle(fromIncomingMessage(request()), socket)).toBeNull();
      expect(onAbort).toHaveBeenCalledTimes(1);
      const [req, data, reason] = onAbort.mock.calls[0]!;
      expect((req as UpgradeRequest).url).toBe('/chat?room=1');
      expect(data).toEqual({ session: 42 });
      expect(reason).toBe('the client went away during the upgrade');
    });

    it('gets them when the response the app asked for cannot be made (500)', async () => {
      const badProtocol = aborting(() => ({ data: 'a', protocol: 'mqtt' }));
      const first = await handler({}, badProtocol.app).run(request({ 'sec-websocket-protocol': 'chat' }));
      expect(statusOf(first.socket)).toBe(500);
      expect(badProtocol.onAbort.mock.calls.map(([, data, reason]) => [data, reason])).toEqual([['a', 'the app chose a subprotocol the client did not offer']]);
      const badHeader = aborting(() => ({ data: 'b', headers: { 'X-A': 'v\r\nX-B: w' } }));
      await handler({}, badHeader.app).run();
      expect(badHeader.onAbort.mock.calls.map(([, data, reason]) => [data, reason])).toEqual([['b', 'invalid response headers from the app']]);
    });

    it('is called from abandon() (the socket closed after the handler, before the 101), its error logged', async () => {
      const onAbort = vi.fn((_req: UpgradeRequest, _data: unknown, _reason: string) => {
        throw new Error('cleanup failed');
      });
      const { accepted } = await handler({}, { upgrade: () => ({ data: 7 }), upgradeAborted: onAbort }).run();
      expect(onAbort).not.toHaveBeenCalled();
      expect(() => accepted!.abandon()).not.toThrow();
      expect(onAbort).toHaveBeenCalledTimes(1);
      const [req, data, reason] = onAbort.mock.calls[0]!;
      expect([req.url, data, reason]).toEqual(['/chat?room=1', 7, 'the client went away before the 101']);
    });

    it('is not called for a refusal, nor when the app has no upgrade handler', async () => {
      const refusing = aborting(() => ({ reject: 401 }));
      await handler({}, refusing.app).run();
      expect(refusing.onAbort).not.toHaveBeenCalled();
      const onAbort = vi.fn();
      const socket = new RecordingSocket();
      socket.destroy();
      await upgradeHandler(resolveConfig({}, 1), { upgradeAborted: onAbort }, new WorkerCounters(1).slot(0)).handle(fromIncomingMessage(request()), socket);
      expect(onAbort).not.toHaveBeenCalled();
    });
  });
});

/** What refuseStream does to an HTTP/2 stream: the answer's fields and body. */
class RecordingStream {
  destroyed = false;
  headersSent = false;
  fields: Record<string, string | number> | null = null;
  body: string | null = null;
  on(): this {
    return this;
  }
  respond(fields: Record<string, string | number>): void {
    this.fields = fields;
    this.headersSent = true;
  }
  end(body: string): void {
    this.body = body;
  }
  resume(): void {}
}

describe('UpgradeHandler over HTTP/2 (RFC 8441)', () => {
  const connect = (fields: Record<string, string | undefined> = {}): HandshakeRequest => {
    const headers: Record<string, string> = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/chat', ':authority': 'example.com', 'sec-websocket-version': '13' };
    for (const [name, value] of Object.entries(fields)) {
      if (value === undefined) delete headers[name];
      else headers[name] = value;
    }
    return { method: 'CONNECT', url: headers[':path'] ?? '/', httpVersion: '2.0', headers, remoteAddress: '203.0.113.9', tls: null, http2: true, raw: () => ({}) as IncomingMessage };
  };
  const run = async (req: HandshakeRequest, options: ServerOptions = {}, app: App<unknown> = {}) => {
    const counters = new WorkerCounters(1).slot(0);
    const stream = new RecordingStream();
    const accepted = (await upgradeHandler(resolveConfig(options, 1), app, counters).handle(req, stream as unknown as Duplex)) as AcceptedConnection | null;
    if (accepted !== null) compressions.push(accepted);
    return { accepted, stream };
  };

  it('accepts with :status 200 fields, no accept key, the chosen subprotocol, extensions and the app headers', async () => {
    const app: App<unknown> = { upgrade: (req) => ({ protocol: req.protocols[1], headers: { 'X-Shard': '3' } }) };
    const { accepted, stream } = await run(connect({ 'sec-websocket-protocol': 'a, chat', 'sec-websocket-extensions': 'permessage-deflate' }), { deflate: true }, app);
    expect(stream.fields).toBeNull();
    expect(accepted!.response).toEqual({ http2: true, fields: { ':status': 200, 'sec-websocket-protocol': 'chat', 'sec-websocket-extensions': accepted!.extensions, 'x-shard': '3' } });
    expect(accepted!.extensions).toMatch(/^permessage-deflate/);
  });

  it('refuses on the stream with the status, the body and no connection-specific fields', async () => {
    const version = await run(connect({ 'sec-websocket-version': '8' }));
    expect(version.accepted).toBeNull();
    expect(version.stream.fields).toEqual({ ':status': 426, 'content-type': 'text/plain; charset=utf-8', 'sec-websocket-version': '13' });
    const plain = await run(connect({ ':protocol': undefined }));
    expect(plain.stream.fields![':status']).toBe(400);
    expect(plain.stream.body).toMatch(/not tunnels/);
    const rejected = await run(connect(), {}, { upgrade: () => ({ reject: 401, headers: { 'WWW-Authenticate': 'Bearer' } }) });
    expect(rejected.stream.fields).toMatchObject({ ':status': 401, 'www-authenticate': 'Bearer' });
  });

  it('refuses a passthrough proxy with 502: its bytes cannot become a stream', async () => {
    const app: App<unknown> = { upgrade: () => ({ proxy: { url: 'ws://127.0.0.1:1/', mode: 'passthrough' } }) };
    const { accepted, stream } = await run(connect(), {}, app);
    expect(accepted).toBeNull();
    expect(stream.fields![':status']).toBe(502);
  });
});
