/**
 * Our client (src/client/websocket.ts) under test: first against the fuzzing server, running the
 * server-side variant of every case (unmasked frames; a masked one must fail with 1002); then
 * groups 12 and 13 over every compression setting the client has (SETTINGS); then against real
 * servers: `ws` (deflate on and off) and ours (deflate shared, dedicated, off).
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { CloseEvent, ErrorEvent, MessageData, MessageEvent } from '../../src/client/websocket.ts';
import { WebSocket } from '../../src/client/websocket.ts';
import type { ClientOptions } from '../../src/client/websocket.ts';
import type { ClientDeflateOptions } from '../../src/client/client-options.ts';
import { listen } from '../../src/main/listen.ts';
import type { ShardServer } from '../../src/main/listen.ts';
import { DEFAULT_THRESHOLD } from '../../src/shared/permessage-deflate.ts';
import type { DeflateOfferOptions, WindowBits } from '../../src/shared/permessage-deflate.ts';
import { allCases } from './cases/index.ts';
import { DEFAULT_DEFLATE } from './cases/compression.ts';
import type { DeflateAccept, Delivery, FuzzingCase } from './fuzzing-case.ts';
import { deliveriesOf, groupOf } from './fuzzing-case.ts';
import { FuzzingServer } from './fuzzing-server.ts';
import type { Verdict } from './judge.ts';
import { failures, handshakeFailure, summaryTable } from './judge.ts';
import { runPool } from './run-pool.ts';

const GROUPS = ['1', 'M', '2', '3', '4', '5', '6', '7', '9', '10', '12', '13'];
const CONCURRENCY = 8;
const KIB = 1024;

/** The client's compressor settings besides its offer; compressing every message by default, as Autobahn's clients do. */
type Tuning = Pick<ClientDeflateOptions, 'threshold' | 'level' | 'memLevel'>;
const EVERY_MESSAGE: Tuning = { threshold: 0 };

const clientOptionsFor = (kase: FuzzingCase, tuning: Tuning): ClientOptions =>
  kase.kind === 'echo' && kase.deflate !== undefined ? { perMessageDeflate: { ...kase.deflate.offers[0], ...tuning } } : {};

/** Our client as Autobahn's test clients are: echo every message as it came, text or binary. */
async function runClientCase(fuzzer: FuzzingServer, kase: FuzzingCase, delivery: Delivery, tuning: Tuning = EVERY_MESSAGE): Promise<Verdict> {
  const { url, verdict } = fuzzer.expect(kase, delivery);
  const ws = new WebSocket(url, [], clientOptionsFor(kase, tuning));
  ws.onmessage = (event) => ws.send(event.data as string | Buffer);
  ws.onerror = () => {};
  const closed = new Promise<boolean>((resolve) => {
    ws.onclose = () => resolve(true);
  });
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<Verdict>((resolve) => {
    timer = setTimeout(() => resolve(handshakeFailure(kase, delivery, new Error('the client did not run the case within 60 s'))), 60_000);
  });
  const result = await Promise.race([verdict, expired]);
  clearTimeout(timer);
  // After the server closed TCP the client must report its close (nothing else would).
  const reported = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(resolve, 3000, false))]);
  if (reported) return result;
  ws.terminate();
  return { ...result, behaviorClose: 'FAILED', resultClose: 'the client never emitted close after the server closed TCP' };
}

describe('conformance: client against the fuzzing server', () => {
  let fuzzer: FuzzingServer;
  const verdicts: Verdict[] = [];
  const cases = allCases();

  beforeAll(async () => {
    fuzzer = await FuzzingServer.start();
  });
  afterAll(async () => {
    console.log(summaryTable('Client conformance: runs by group', verdicts));
    await fuzzer?.close();
  });

  it.each(GROUPS)('group %s', async (group) => {
    const runs = cases
      .filter((c) => groupOf(c.id) === group)
      .flatMap((kase) => deliveriesOf(kase).map((delivery): [FuzzingCase, Delivery] => [kase, delivery]));
    const results = await runPool(runs, CONCURRENCY, ([kase, delivery]) => runClientCase(fuzzer, kase, delivery));
    verdicts.push(...results);
    expect(results.length).toBeGreaterThan(0);
    expect(failures(results)).toEqual([]);
  }, 90_000);
});

/**
 * A compression setting of the client: what it offers (group 12's cases then negotiate it, the
 * fuzzing server answering with `accept`), or its compressor's threshold, level and memLevel
 * (for groups 12 and 13, whose cases keep their own offers: 13.x already cover every window and
 * no_context_takeover in both directions).
 */
interface ClientSetting {
  readonly name: string;
  readonly offer?: { readonly offer: DeflateOfferOptions; readonly accept: DeflateAccept };
  readonly tuning?: Tuning;
}

const WINDOWS: readonly WindowBits[] = [8, 9, 10, 11, 12, 13, 14, 15];
const SETTINGS: readonly ClientSetting[] = [
  // The client's compressor at each window the server asks for, keeping context.
  ...WINDOWS.map((bits): ClientSetting => ({
    name: `compressing at window ${bits}`,
    offer: { offer: { clientMaxWindowBits: true }, accept: { requestNoContextTakeover: false, requestMaxWindowBits: bits } },
  })),
  {
    name: 'compressing without context (client_no_context_takeover)',
    offer: { offer: { clientMaxWindowBits: true, clientNoContextTakeover: true }, accept: { requestNoContextTakeover: true, requestMaxWindowBits: 0 } },
  },
  // The client's decompressor at each window it asks the server for, with and without context.
  ...WINDOWS.map((bits): ClientSetting => ({
    name: `inflating at window ${bits}`,
    offer: { offer: { serverMaxWindowBits: bits }, accept: { requestNoContextTakeover: false, requestMaxWindowBits: 0 } },
  })),
  {
    name: 'inflating without context (server_no_context_takeover), compressing at window 10',
    offer: { offer: { serverNoContextTakeover: true, clientMaxWindowBits: 10 }, accept: { requestNoContextTakeover: false, requestMaxWindowBits: 10 } },
  },
  { name: 'threshold 128 (the default)', tuning: { threshold: DEFAULT_THRESHOLD } },
  { name: 'threshold 4096', tuning: { threshold: 4096 } },
  { name: 'level 0, memLevel 1', tuning: { threshold: 0, level: 0, memLevel: 1 } },
  { name: 'level 9, memLevel 9', tuning: { threshold: 0, level: 9, memLevel: 9 } },
];

/** A compression case with the setting's offer, when it has one (group 12 takes Autobahn's default offer). */
function withOffer(kase: FuzzingCase, setting: ClientSetting): FuzzingCase {
  if (kase.kind !== 'echo' || kase.deflate !== DEFAULT_DEFLATE || setting.offer === undefined) return kase;
  return { ...kase, deflate: { offers: [setting.offer.offer], accept: [setting.offer.accept] } };
}

describe.each(SETTINGS)('conformance: client, $name', (setting) => {
  let fuzzer: FuzzingServer;
  const verdicts: Verdict[] = [];

  beforeAll(async () => {
    fuzzer = await FuzzingServer.start();
  });
  afterAll(async () => {
    console.log(summaryTable(`Client conformance (${setting.name}): runs by group`, verdicts));
    await fuzzer?.close();
  });

  it.each(setting.offer === undefined ? ['12', '13'] : ['12'])('group %s', async (group) => {
    const cases = allCases().filter((c) => groupOf(c.id) === group).map((kase) => withOffer(kase, setting));
    const results = await runPool(cases, CONCURRENCY, (kase) => runClientCase(fuzzer, kase, 'frames', setting.tuning ?? EVERY_MESSAGE));
    verdicts.push(...results);
    expect(results.length).toBeGreaterThan(0);
    expect(failures(results)).toEqual([]);
  }, 90_000);
});

// ---- interop -----------------------------------------------------------------------------------

const opened = new Set<WebSocket>();

afterEach(() => {
  for (const ws of opened) ws.terminate();
  opened.clear();
});

/** A client that records its messages, its error and its close from the start. */
class Recorder {
  readonly ws: WebSocket;
  readonly messages: MessageData[] = [];
  error: ErrorEvent | null = null;
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;

  constructor(url: string, protocols: string | string[] = [], options: ClientOptions = {}) {
    this.ws = new WebSocket(url, protocols, options);
    opened.add(this.ws);
    this.ws.onmessage = (event: MessageEvent) => this.messages.push(event.data);
    this.ws.onerror = (event: ErrorEvent) => (this.error = event);
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener('open', () => resolve());
      this.ws.addEventListener('close', (event) => reject(new Error(`closed with ${(event as CloseEvent).code} before opening`)));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.addEventListener('close', (event) => resolve(event as CloseEvent)));
  }

  async next(timeout = 5000): Promise<MessageData> {
    const deadline = Date.now() + timeout;
    const index = this.messages.length;
    while (this.messages.length <= index) {
      if (Date.now() > deadline) throw new Error('no message within the timeout');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.messages[index]!;
  }

  async request(data: string | Buffer): Promise<MessageData> {
    const reply = this.next();
    this.ws.send(data);
    return reply;
  }
}

interface EchoServer {
  readonly url: string;
  /** Close code and reason the server saw, per connection that closed (ws servers only). */
  readonly closes: { code: number; reason: string }[];
  close(): Promise<void>;
}

async function wsServer(perMessageDeflate: boolean): Promise<EchoServer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate, handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false) });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const server: EchoServer = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    closes: [],
    close: () => new Promise<void>((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    }),
  };
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('close', (code, reason) => server.closes.push({ code, reason: reason.toString() }));
    ws.on('message', (data: Buffer, isBinary) => {
      const text = isBinary ? '' : data.toString();
      if (text.startsWith('close:')) {
        const [, code, reason] = text.split(':');
        ws.close(Number(code), reason);
      } else {
        ws.send(data, { binary: isBinary });
      }
    });
  });
  return server;
}

async function ourServer(deflate: 'shared' | 'dedicated' | 'off'): Promise<EchoServer & { shard: ShardServer }> {
  const shard = await listen({
    app: fileURLToPath(new URL('./interop-app.ts', import.meta.url)),
    port: 0,
    host: '127.0.0.1',
    workers: 2,
    deflate: deflate === 'off' ? false : deflate,
    logLevel: 'silent',
    shutdownGrace: 0.5,
  });
  return { url: `ws://127.0.0.1:${shard.address().port}`, closes: [], shard, close: () => shard.close() };
}

describe.each([
  { name: 'ws, perMessageDeflate on', start: () => wsServer(true), deflate: true },
  { name: 'ws, perMessageDeflate off', start: () => wsServer(false), deflate: false },
  { name: 'shardws, deflate shared', start: () => ourServer('shared'), deflate: true },
  { name: 'shardws, deflate dedicated', start: () => ourServer('dedicated'), deflate: true },
  { name: 'shardws, deflate off', start: () => ourServer('off'), deflate: false },
])('client interop: $name', ({ start, deflate }) => {
  let server: EchoServer;
  beforeAll(async () => {
    server = await start();
  });
  afterAll(() => server?.close());

  it('negotiates permessage-deflate only when the server supports it', async () => {
    const client = new Recorder(`${server.url}/echo`);
    await client.opened;
    expect(client.ws.extensions.startsWith('permessage-deflate')).toBe(deflate);
    const plain = new Recorder(`${server.url}/echo`, [], { perMessageDeflate: false });
    await plain.opened;
    expect(plain.ws.extensions).toBe('');
  });

  it('echoes text and binary, empty and large, in order', async () => {
    const client = new Recorder(`${server.url}/echo`);
    await client.opened;
    expect(await client.request('héllo wörld 🌍')).toBe('héllo wörld 🌍');
    expect(await client.request('')).toBe('');
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    expect(Buffer.compare((await client.request(bytes)) as Buffer, bytes)).toBe(0);
    expect(((await client.request(Buffer.alloc(0))) as Buffer).length).toBe(0);
    const big = Buffer.alloc(512 * KIB, 'shardws ');
    expect(((await client.request(big)) as Buffer).equals(big)).toBe(true);
    const many = Array.from({ length: 50 }, (_, i) => `message ${i} ${'x'.repeat(i * 20)}`);
    const received = client.messages.length;
    for (const m of many) client.ws.send(m);
    const deadline = Date.now() + 5000;
    while (client.messages.length < received + many.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(client.messages.slice(received)).toEqual(many);
  });

  it("delivers binary as ArrayBuffer with binaryType 'arraybuffer'", async () => {
    const client = new Recorder(`${server.url}/echo`);
    client.ws.binaryType = 'arraybuffer';
    await client.opened;
    const reply = await client.request(Buffer.from([9, 8, 7, 6]));
    expect(reply).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(reply as ArrayBuffer)]).toEqual([9, 8, 7, 6]);
    expect(await client.request('text stays a string')).toBe('text stays a string');
  });

  it('negotiates a subprotocol the server supports, and none otherwise', async () => {
    const chat = new Recorder(`${server.url}/echo`, ['superchat', 'chat']);
    await chat.opened;
    expect(chat.ws.protocol).toBe('chat');
    const other = new Recorder(`${server.url}/echo`, ['superchat']);
    await other.opened;
    expect(other.ws.protocol).toBe('');
  });

  it('reports the close code and reason the server closes with', async () => {
    const client = new Recorder(`${server.url}/echo`);
    await client.opened;
    client.ws.send('close:4001:going home');
    const event = await client.closed;
    expect({ code: event.code, reason: event.reason, wasClean: event.wasClean }).toEqual({ code: 4001, reason: 'going home', wasClean: true });
    expect(client.ws.readyState).toBe(WebSocket.CLOSED);
  });

  it('closes with its own code and reason, cleanly', async () => {
    const client = new Recorder(`${server.url}/echo`);
    await client.opened;
    client.ws.close(3001, 'later');
    expect(client.ws.readyState).toBe(WebSocket.CLOSING);
    const event = await client.closed;
    expect({ code: event.code, wasClean: event.wasClean }).toEqual({ code: 3001, wasClean: true });
    if ('shard' in server) return; // our interop app does not report what it saw
    const seen = (): boolean => server.closes.some((c) => c.code === 3001 && c.reason === 'later');
    const deadline = Date.now() + 2000;
    while (!seen() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(seen()).toBe(true);
  });
});

describe('client handshake failures', () => {
  let silent: Server;
  const sockets = new Set<Socket>();
  let shard: (EchoServer & { shard: ShardServer }) | null = null;

  beforeAll(async () => {
    silent = createServer((socket) => {
      sockets.add(socket); // accepts, reads, never answers
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    shard = await ourServer('off');
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    await shard?.close();
  });

  it('times out against a server that never answers: error, then close 1006', async () => {
    const started = Date.now();
    const client = new Recorder(`ws://127.0.0.1:${(silent.address() as AddressInfo).port}/`, [], { handshakeTimeout: 0.3 });
    const event = await client.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(client.error).not.toBeNull();
    expect({ code: event.code, wasClean: event.wasClean }).toEqual({ code: 1006, wasClean: false });
    expect(client.ws.readyState).toBe(WebSocket.CLOSED);
  });

  it('fails on a 401 answer: error naming the status, then close 1006', async () => {
    const client = new Recorder(`${shard!.url}/private`);
    const event = await client.closed;
    expect(client.error?.message).toMatch(/401/);
    expect({ code: event.code, wasClean: event.wasClean }).toEqual({ code: 1006, wasClean: false });
  });
});
