/**
 * The shardws client's WebSocket against ws servers over loopback: the constructor's promise (it
 * throws only for a bad URL, subprotocol or option), binaryType, ping/pong, the close ordering
 * and closing while connecting.
 */
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { WebSocket as WsSocket } from 'ws';
import { UnexpectedResponseError, WebSocket } from '../../src/client/websocket.ts';
import type { ClientOptions } from '../../src/client/websocket.ts';
import { traceClient } from '../support/client-trace.ts';
import { testCert, testKey } from '../support/tls-fixture.ts';

const cert = testCert;
const key = testKey;

const servers: WebSocketServer[] = [];
const httpsServers: Server[] = [];
const clients: WebSocket[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate();
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
  for (const server of httpsServers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

function client(url: string, protocols?: string | string[] | ClientOptions, options?: ClientOptions): WebSocket {
  const ws = new WebSocket(url, protocols, options);
  clients.push(ws);
  return ws;
}

interface Recording {
  readonly url: string;
  readonly server: WebSocketServer;
  readonly received: (string | Buffer)[];
  readonly closes: number[];
  readonly pongs: string[];
  connections(): number;
}

/** A ws server recording what it receives (text as strings, binary as Buffers) and echoing it back. */
async function recordingServer(perMessageDeflate: boolean | object = false, tls = false): Promise<Recording> {
  let server: WebSocketServer;
  let url: string;
  if (tls) {
    const https = createHttpsServer({ cert, key });
    httpsServers.push(https);
    server = new WebSocketServer({ server: https, perMessageDeflate });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    url = `wss://127.0.0.1:${(https.address() as AddressInfo).port}`;
  } else {
    server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate });
    await new Promise((resolve) => server.once('listening', resolve));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  servers.push(server);
  const received: (string | Buffer)[] = [];
  const closes: number[] = [];
  const pongs: string[] = [];
  server.on('connection', (socket: WsSocket) => {
    socket.on('message', (data: Buffer, isBinary) => {
      received.push(isBinary ? data : data.toString());
      if (!isBinary && data.toString().startsWith('ping-me:')) socket.ping(data.toString().slice(8));
      else socket.send(data, { binary: isBinary });
    });
    socket.on('pong', (data) => pongs.push(data.toString()));
    socket.on('close', (code) => closes.push(code));
  });
  return { url, server, received, closes, pongs, connections: () => server.clients.size };
}

async function until(predicate: () => boolean, what: string, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the constructor throws only for a bad URL, subprotocol or option', () => {
  it('opens wss:// to an IP address (no TLS server name; the certificate is checked against the IP)', async () => {
    const server = await recordingServer(false, true);
    expect(server.url).toMatch(/^wss:\/\/127\.0\.0\.1:/);
    const ws = client(server.url, { tls: { ca: cert } });
    const trace = traceClient(ws);
    await trace.waitFor('open');
    ws.send('over tls to an IP');
    expect(await trace.next()).toBe('over tls to an IP');
  });

  it('reports every connection problem as error, then close 1006, after the constructor returned', async () => {
    const refused = await recordingServer();
    const port = new URL(refused.url).port;
    await new Promise((resolve) => servers.pop()!.close(resolve)); // nothing listens on `port` now
    const cases: [string, ClientOptions][] = [
      ['wss://10.0.0.5:9001/', { handshakeTimeout: 0.3 }], // the issue's URL: an IP given to TLS as server name threw ERR_INVALID_ARG_VALUE
      [`ws://127.0.0.1:${port}/`, {}],
      [`wss://127.0.0.1:${port}/`, {}],
      [`ws://[::1]:${port}/`, {}],
      [`wss://[::1]:${port}/`, {}],
      ['ws://127.0.0.1:0/', {}],
      ['ws://no-such-host.invalid/', {}],
      [`wss://user:%ZZ@127.0.0.1:${port}/`, {}], // malformed percent-encoding in the credentials
      [`wss://127.0.0.1:${port}/`, { tls: { ca: 'not a certificate', cert: 'nor this' } }], // TLS options Node refuses
      [`ws://127.0.0.1:${port}/`, { proxy: `http://127.0.0.1:${port}` }],
      [`http://127.0.0.1:${port}/path with space?q=ü`, {}],
    ];
    const results = await Promise.all(
      cases.map(async ([url, options]) => {
        let ws: WebSocket;
        try {
          ws = client(url, options);
        } catch (error) {
          return `${url}: threw ${(error as Error).message}`;
        }
        const trace = traceClient(ws); // listeners attached after the constructor still hear everything
        const close = await trace.closed();
        return `${url}: ${trace.events.join(', ')} wasClean=${close.wasClean} state=${ws.readyState}`;
      }),
    );
    expect(results).toEqual(cases.map(([url]) => `${url}: error, close 1006 false wasClean=false state=3`));
  });

  it('throws a SyntaxError DOMException for a bad URL or subprotocol list, as browsers do', () => {
    const syntax = (make: () => unknown): string => {
      try {
        make();
        return 'no throw';
      } catch (error) {
        return error instanceof DOMException ? error.name : String(error);
      }
    };
    for (const url of ['not a url', 'ftp://example.com/', 'ws://example.com/#fragment', 'ws://example.com/#', 'ws://256.0.0.1/', 'ws://[::1/']) {
      expect(syntax(() => new WebSocket(url)), url).toBe('SyntaxError');
    }
    for (const protocols of ['', 'a b', ['chat', 'chat'], ['chat, superchat'], ['ok', 'bad\u00e9']]) {
      expect(syntax(() => new WebSocket('ws://127.0.0.1:1/', protocols)), JSON.stringify(protocols)).toBe('SyntaxError');
    }
    // A bad option is the caller's mistake: TypeError or RangeError naming it, as ws.
    expect(() => new WebSocket('ws://127.0.0.1:1/', [], { headers: { Upgrade: 'h2c' } })).toThrow(TypeError);
    expect(() => new WebSocket('ws://127.0.0.1:1/', { handshakeTimeout: -1 })).toThrow(RangeError);
  });

  it('takes options in place of protocols, as ws does', async () => {
    const server = await recordingServer();
    const ws = client(server.url, { perMessageDeflate: false });
    await traceClient(ws).waitFor('open');
    expect(ws.protocol).toBe('');
    expect(ws.url).toBe(`${server.url}/`);
  });
});

describe('binaryType', () => {
  it("defaults to 'nodebuffer', takes 'arraybuffer' and 'blob', and ignores other values as browsers do", async () => {
    const server = await recordingServer();
    const ws = client(server.url);
    const trace = traceClient(ws);
    expect(ws.binaryType).toBe('nodebuffer');
    await trace.waitFor('open');
    ws.send(Buffer.from([1, 2, 3]));
    expect(await trace.next()).toEqual(Buffer.from([1, 2, 3]));
    ws.binaryType = 'arraybuffer';
    ws.send(Buffer.from([4, 5]));
    const ab = await trace.next();
    expect(ab).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(ab as ArrayBuffer)]).toEqual([4, 5]);
    ws.binaryType = 'blob';
    ws.binaryType = 'bogus' as 'blob';
    expect(ws.binaryType).toBe('blob');
    ws.send(new Uint8Array([6, 7, 8]));
    const blob = await trace.next();
    expect(blob).toBeInstanceOf(Blob);
    expect((blob as Blob).size).toBe(3);
    expect([...new Uint8Array(await (blob as Blob).arrayBuffer())]).toEqual([6, 7, 8]);
    ws.send('text is a string whatever binaryType says');
    expect(await trace.next()).toBe('text is a string whatever binaryType says');
  });

  it('sends Blobs in order with everything else, and before a close() that follows them', async () => {
    const server = await recordingServer({ threshold: 0 });
    const ws = client(server.url);
    const trace = traceClient(ws);
    await trace.waitFor('open');
    const big = new Blob([new Uint8Array(200_000).fill(9)]);
    ws.send(new Blob(['blob one']));
    ws.send('text two');
    ws.send(big);
    ws.send(new Uint8Array([3]));
    expect(ws.bufferedAmount).toBeGreaterThanOrEqual(200_000);
    ws.close(1000, 'after the blobs');
    const close = await trace.closed();
    expect({ code: close.code, wasClean: close.wasClean }).toEqual({ code: 1000, wasClean: true });
    await until(() => server.closes.length === 1, 'the server to see the close');
    expect(server.received.map((m) => (typeof m === 'string' ? m : `binary ${m.length > 10 ? `${m.length} bytes` : m.toString()}`))).toEqual([
      'binary blob one',
      'text two',
      'binary 200000 bytes',
      'binary \x03',
    ]);
    expect(server.closes).toEqual([1000]);
  });
});

describe('ping and pong (Node extensions)', () => {
  it('ping(data) is answered by a pong event carrying the same data', async () => {
    const server = await recordingServer();
    const ws = client(server.url);
    const trace = traceClient(ws);
    const pongs: string[] = [];
    ws.addEventListener('pong', (e) => pongs.push(e.data.toString()));
    await trace.waitFor('open');
    ws.ping('are you there');
    ws.ping();
    ws.ping(new Uint8Array(125));
    await trace.waitFor('pong', 3);
    expect(pongs).toEqual(['are you there', '', '\0'.repeat(125)]);
  });

  it("a server's ping is answered automatically and reported as a ping event", async () => {
    const server = await recordingServer();
    const ws = client(server.url);
    const trace = traceClient(ws);
    const pings: string[] = [];
    ws.addEventListener('ping', (e) => pings.push(e.data.toString()));
    await trace.waitFor('open');
    ws.send('ping-me:heartbeat 1');
    await trace.waitFor('ping');
    await until(() => server.pongs.length === 1, 'the pong to reach the server');
    expect(pings).toEqual(['heartbeat 1']);
    expect(server.pongs).toEqual(['heartbeat 1']);
  });

  it('refuses a ping over 125 bytes or before the connection opened', async () => {
    const server = await recordingServer();
    const ws = client(server.url);
    expect(() => ws.ping()).toThrow(expect.objectContaining({ name: 'InvalidStateError' }));
    await traceClient(ws).waitFor('open');
    expect(() => ws.ping(Buffer.alloc(126))).toThrow(RangeError);
    ws.close();
    ws.ping('after close: ignored, as send() is');
  });
});

describe('closing', () => {
  it('sends every message given before close(), compressed off-thread ones included, then the close', async () => {
    // Context takeover: the client compresses on zlib's contexts between messages.
    const server = await recordingServer({ threshold: 0 });
    const ws = client(server.url, [], { perMessageDeflate: { clientMaxWindowBits: true } });
    const trace = traceClient(ws);
    await trace.waitFor('open');
    const big = 'x'.repeat(64 * 1024); // above the synchronous limit as well
    ws.send('first');
    ws.send(big);
    ws.send('last');
    ws.close(1000, 'done');
    const closed = await trace.closed();
    expect(closed).toMatchObject({ code: 1000, wasClean: true, willReconnect: false });
    await until(() => server.closes.length === 1, 'the server to see the close');
    expect(server.received).toEqual(['first', big, 'last']);
    expect(server.closes).toEqual([1000]);
  });

  it('checks the code and the reason as browsers do', async () => {
    const server = await recordingServer();
    const ws = client(server.url);
    await traceClient(ws).waitFor('open');
    expect(() => ws.close(1001)).toThrow(expect.objectContaining({ name: 'InvalidAccessError' }));
    expect(() => ws.close(5000)).toThrow(expect.objectContaining({ name: 'InvalidAccessError' }));
    expect(() => ws.close(1000, 'é'.repeat(62))).toThrow(expect.objectContaining({ name: 'SyntaxError' }));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close(4000, 'é'.repeat(61));
    expect(ws.readyState).toBe(WebSocket.CLOSING);
  });

  for (const how of ['close', 'terminate'] as const) {
    it(`${how}() while connecting: CLOSING at once, then error and close 1006, and no connection left behind`, async () => {
      const server = await recordingServer();
      const ws = client(server.url);
      const trace = traceClient(ws);
      ws[how]();
      expect(ws.readyState).toBe(WebSocket.CLOSING);
      await trace.closed();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(trace.events).toEqual(['error', 'close 1006 false']);
      expect(trace.errors[0]!.message).toBe('WebSocket was closed before the connection was established');
      expect(ws.readyState).toBe(WebSocket.CLOSED);
      expect(server.connections()).toBe(0);
    });
  }

  it('reports a refused upgrade as an UnexpectedResponseError with the status and headers', async () => {
    const server = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      verifyClient: (_info, done) => done(false, 403, 'Forbidden', { 'X-Reason': 'no entry' }),
    });
    servers.push(server);
    await new Promise((resolve) => server.once('listening', resolve));
    const ws = client(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    const trace = traceClient(ws);
    const close = await trace.closed();
    expect(close.code).toBe(1006);
    expect(trace.errors[0]).toBeInstanceOf(UnexpectedResponseError);
    expect(trace.errors[0]).toMatchObject({ status: 403, statusText: 'Forbidden', fromProxy: false, message: 'server answered the upgrade with 403 Forbidden' });
    expect((trace.errors[0] as UnexpectedResponseError).headers['x-reason']).toBe('no entry');
  });
});

describe('reconnect (opt-in)', () => {
  /** A ws server that closes each connection right away with `code` (or refuses the upgrade with `status`). */
  async function closingServer(code: number | null, status?: number): Promise<{ url: string; connections: () => number }> {
    let count = 0;
    const server = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      verifyClient: (_info, done) => {
        count++;
        if (status === undefined) done(true);
        else done(false, status);
      },
    });
    servers.push(server);
    await new Promise((resolve) => server.once('listening', resolve));
    server.on('connection', (socket) => {
      if (code === null) socket.terminate();
      else socket.close(code, 'bye');
    });
    return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, connections: () => count };
  }

  const fast = { minDelay: 0.01, maxDelay: 0.04, jitter: 0 };

  it('is off by default: a lost connection stays closed', async () => {
    const server = await closingServer(1001);
    const ws = client(server.url);
    const trace = traceClient(ws);
    await trace.closed();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(trace.events).toEqual(['open', 'close 1001 true']);
    expect(server.connections()).toBe(1);
  });

  it('marks the events: close says willReconnect, reconnect counts attempts, open says reconnected', async () => {
    const server = await closingServer(1012);
    const ws = client(server.url, { reconnect: fast });
    const trace = traceClient(ws);
    const delays: number[] = [];
    ws.addEventListener('reconnect', (e) => delays.push(e.delay));
    let opens = 0;
    ws.addEventListener('open', () => {
      if (++opens === 3) ws.close();
    });
    await trace.closed();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(trace.events).toEqual([
      'open', 'close 1012 true reconnect', 'reconnect 1',
      'open reconnected 1', 'close 1012 true reconnect', 'reconnect 1',
      'open reconnected 1', 'close 1012 true',
    ]);
    // Connections shorter than minUptime (5 s) do not reset the backoff: it keeps doubling.
    expect(delays).toEqual([0.01, 0.02]);
    expect(server.connections()).toBe(3);
  });

  it('starts the backoff over after a connection that stayed up for minUptime', async () => {
    const server = await closingServer(1012);
    const ws = client(server.url, { reconnect: { ...fast, minUptime: 0 } });
    const delays: number[] = [];
    ws.addEventListener('reconnect', (e) => delays.push(e.delay));
    let opens = 0;
    ws.addEventListener('open', () => {
      if (++opens === 3) ws.close();
    });
    await traceClient(ws).closed();
    expect(delays).toEqual([0.01, 0.01]);
  });

  it('counts attempts that fail to open, and gives up after maxRetries (the first connection included)', async () => {
    const gone = await closingServer(1000);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const ws = client(gone.url, { reconnect: { ...fast, maxRetries: 2 } });
    const trace = traceClient(ws);
    const close = await trace.closed();
    expect(close.willReconnect).toBe(false);
    expect(trace.events).toEqual([
      'error', 'close 1006 false reconnect', 'reconnect 1',
      'error', 'close 1006 false reconnect', 'reconnect 2',
      'error', 'close 1006 false',
    ]);
    expect(trace.errors.every((e) => /ECONNREFUSED/.test(e.message))).toBe(true);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });

  it("does not retry a close the server meant (1000, 1008, 4000) or a refusal that would repeat (401); retries 503", async () => {
    for (const code of [1000, 1008, 4000]) {
      const server = await closingServer(code);
      const trace = traceClient(client(server.url, { reconnect: fast }));
      await trace.closed();
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(trace.events, String(code)).toEqual(['open', `close ${code} true`]);
      expect(server.connections()).toBe(1);
    }
    const unauthorized = await closingServer(null, 401);
    const refused = traceClient(client(unauthorized.url, { reconnect: fast }));
    await refused.closed();
    expect(refused.events).toEqual(['error', 'close 1006 false']);
    const unavailable = await closingServer(null, 503);
    const retried = traceClient(client(unavailable.url, { reconnect: { ...fast, maxRetries: 1 } }));
    await retried.closed();
    expect(retried.events).toEqual(['error', 'close 1006 false reconnect', 'reconnect 1', 'error', 'close 1006 false']);
    expect(unavailable.connections()).toBe(2);
  });

  it('lets shouldReconnect decide, with the code, the reason and the error', async () => {
    const server = await closingServer(4000);
    const seen: string[] = [];
    const ws = client(server.url, {
      reconnect: {
        ...fast,
        shouldReconnect: (d) => {
          seen.push(`${d.code} ${d.reason} ${d.wasClean} ${d.error === null ? 'no error' : d.error.message}`);
          return seen.length < 3;
        },
      },
    });
    const trace = traceClient(ws);
    await trace.closed();
    expect(seen).toEqual(['4000 bye true no error', '4000 bye true no error', '4000 bye true no error']);
    expect(trace.events.filter((e) => e.startsWith('open'))).toEqual(['open', 'open reconnected 1', 'open reconnected 1']);
  });

  it('close() while waiting to reconnect: CONNECTING until then, then error and close 1006, and no further attempt', async () => {
    const gone = await closingServer(1000);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const ws = client(gone.url, { reconnect: { minDelay: 10, maxDelay: 10, jitter: 0 } });
    const trace = traceClient(ws);
    await trace.waitFor('reconnect');
    expect(ws.readyState).toBe(WebSocket.CONNECTING);
    expect(() => ws.send('x')).toThrow(expect.objectContaining({ name: 'InvalidStateError' }));
    ws.close();
    expect(ws.readyState).toBe(WebSocket.CLOSING);
    await trace.closed();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(trace.events).toEqual(['error', 'close 1006 false reconnect', 'reconnect 1', 'error', 'close 1006 false']);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });

  it('close() from the close handler that announced a reconnection cancels it', async () => {
    const server = await closingServer(1001);
    const ws = client(server.url, { reconnect: fast });
    const trace = traceClient(ws);
    ws.onclose = () => ws.close();
    await trace.waitFor('close');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(trace.events).toEqual(['open', 'close 1001 true reconnect']);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
    expect(server.connections()).toBe(1);
  });
});
