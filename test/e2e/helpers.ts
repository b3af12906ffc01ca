/**
 * Shared pieces of the end-to-end suites: a server on 127.0.0.1 with two workers, `ws` clients
 * that record what they receive, raw sockets for malformed input, and bounded waits.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { ClientOptions } from 'ws';
import { acceptModeFor } from '../../src/main/accept-mode.ts';
import type { AcceptMode } from '../../src/main/accept-mode.ts';
import { listen } from '../../src/main/listen.ts';
import type { ListenOptions, ShardServer } from '../../src/main/listen.ts';

export { WebSocket };

/**
 * How connections reach the workers on the Node running the tests: the primary balances them
 * ('transfer', Node >= 26.6) or the kernel hashes them over the workers ('reuseport').
 */
export const acceptMode: AcceptMode = acceptModeFor();

const servers = new Set<ShardServer>();
const clients = new Set<WebSocket>();
const rawSockets = new Set<Socket>();

/** Absolute path of a fixture app under test/fixtures/apps (workers import it as plain TS). */
export function fixtureApp(name: string): string {
  return fileURLToPath(new URL(`../fixtures/apps/${name}.ts`, import.meta.url));
}

/** Starts a server on an ephemeral loopback port with two silent workers; `cleanup` closes it. */
export async function startServer(options: ListenOptions = {}): Promise<ShardServer> {
  const server = await listen({ port: 0, host: '127.0.0.1', workers: 2, logLevel: 'silent', shutdownGrace: 1, ...options });
  servers.add(server);
  return server;
}

export function wsUrl(server: ShardServer, path = '/echo'): string {
  return `ws://127.0.0.1:${server.address().port}${path}`;
}

/** Terminates every client and raw socket the test opened, then closes every server it started. */
export async function cleanup(): Promise<void> {
  for (const ws of clients) ws.terminate();
  clients.clear();
  for (const socket of rawSockets) socket.destroy();
  rawSockets.clear();
  const closing = [...servers].map((server) => server.close());
  servers.clear();
  await Promise.all(closing);
}

/** Polls `predicate` every 10 ms until it holds; rejects after `timeout` ms naming `what`. */
export async function waitFor(predicate: () => boolean, what: string, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Rejects with a named error if `promise` has not settled within `timeout` ms. */
export function withTimeout<T>(promise: Promise<T>, what: string, timeout = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export interface Received {
  readonly data: Buffer;
  readonly isBinary: boolean;
}

export interface CloseEvent {
  readonly code: number;
  readonly reason: string;
}

/** A `ws` client that records every message and its close from the moment it is created. */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  readonly closed: Promise<CloseEvent>;
  closeEvent: CloseEvent | null = null;
  #cursor = 0;

  constructor(url: string, protocols?: string | string[], options?: ClientOptions) {
    this.ws = new WebSocket(url, protocols, options);
    clients.add(this.ws);
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.received.push({ data, isBinary }));
    this.ws.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code: number, reason: Buffer) => {
        this.closeEvent = { code, reason: reason.toString() };
        resolve(this.closeEvent);
      });
    });
  }

  /** Messages received as strings (text and binary alike). */
  get texts(): string[] {
    return this.received.map((m) => m.data.toString());
  }

  /** Resolves once the handshake completes; rejects on an error, an HTTP refusal or a close. */
  opened(timeout = 5000): Promise<this> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this);
    return withTimeout(
      new Promise<this>((resolve, reject) => {
        this.ws.once('open', () => resolve(this));
        this.ws.once('error', reject);
        this.ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
        this.ws.once('close', (code) => reject(new Error(`closed with ${code} before opening`)));
      }),
      'the client to open',
      timeout,
    );
  }

  /** The next message not yet taken by `next`. */
  async next(timeout = 5000): Promise<Received> {
    await waitFor(() => this.received.length > this.#cursor || this.closeEvent !== null, 'a message', timeout);
    if (this.received.length <= this.#cursor) throw new Error(`closed with ${this.closeEvent!.code} while waiting for a message`);
    return this.received[this.#cursor++]!;
  }

  async nextText(timeout = 5000): Promise<string> {
    return (await this.next(timeout)).data.toString();
  }

  /** Makes `next` skip everything received so far. */
  skipReceived(): void {
    this.#cursor = this.received.length;
  }

  /** Sends and waits for the next message (an echo, a reply). */
  async request(data: string | Buffer, timeout = 5000): Promise<Received> {
    this.ws.send(data);
    return this.next(timeout);
  }

  /** The client's TCP socket (pause it to stop reading, as a slow client would). */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  waitClosed(timeout = 5000): Promise<CloseEvent> {
    return withTimeout(this.closed, 'the connection to close', timeout);
  }
}

/** Sends a command and waits for the first later message that starts with `prefix`; returns it as text. */
export async function ask(client: TestClient, command: string, prefix: string): Promise<string> {
  const from = client.received.length;
  client.ws.send(command);
  let found: string | undefined;
  await waitFor(() => (found = client.received.slice(from).map((m) => m.data.toString()).find((t) => t.startsWith(prefix))) !== undefined, `an answer to ${command}`);
  return found!;
}

/** Opens a client and waits for the handshake. */
export function openClient(url: string, protocols?: string | string[], options?: ClientOptions): Promise<TestClient> {
  return new TestClient(url, protocols, options).opened();
}

/** A client of an app that greets each connection with `{"hello": shardId}`; `shard` says where it landed. */
export interface ShardClient {
  readonly client: TestClient;
  readonly shard: number;
}

export async function openShardClient(url: string, options?: ClientOptions): Promise<ShardClient> {
  const client = await openClient(url, undefined, options);
  const hello = JSON.parse(await client.nextText()) as { hello: number };
  return { client, shard: hello.hello };
}

/** Opens clients until one lands on `worker` (a replacement takes connections once it is ready). */
export async function clientOn(server: ShardServer, worker: number): Promise<ShardClient> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const candidate = await openShardClient(wsUrl(server, '/'));
    if (candidate.shard === worker) return candidate;
    candidate.client.ws.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no connection landed on worker ${worker}`);
}

/** Opens `count` greeting clients one after another, wherever they land. */
export async function openShardClients(url: string, count: number, options?: ClientOptions): Promise<ShardClient[]> {
  const out: ShardClient[] = [];
  for (let i = 0; i < count; i++) out.push(await openShardClient(url, options));
  return out;
}

export interface SpreadOptions {
  /** Workers the server runs (startServer starts 2). */
  readonly workers?: number;
  /** Keep clients beyond `perWorker` on a worker instead of closing them. */
  readonly keepExtras?: boolean;
  /** Connections to try before giving up. */
  readonly maxAttempts?: number;
  readonly client?: ClientOptions;
}

/**
 * Opens greeting clients until each worker holds at least `perWorker`, in the order they opened.
 * The primary's balancer alternates, but the kernel's SO_REUSEPORT hash may put several in a row
 * on one worker, so tests ask for a spread instead of assuming one. Extras are closed (and their
 * close awaited) unless `keepExtras`.
 */
export async function openClientsOnEachWorker(url: string, perWorker: number, options: SpreadOptions = {}): Promise<ShardClient[]> {
  const workers = options.workers ?? 2;
  const maxAttempts = options.maxAttempts ?? 64;
  const kept: ShardClient[] = [];
  const held = new Array<number>(workers).fill(0);
  const spread = (): boolean => held.every((n) => n >= perWorker);
  for (let attempt = 0; attempt < maxAttempts && !spread(); attempt++) {
    const opened = await openShardClient(url, options.client);
    if (!(opened.shard >= 0 && opened.shard < workers)) throw new Error(`a client landed on worker ${opened.shard}, outside 0..${workers - 1}`);
    if (options.keepExtras || held[opened.shard]! < perWorker) {
      kept.push(opened);
      held[opened.shard]!++;
    } else {
      opened.client.ws.close();
      await opened.client.waitClosed();
    }
  }
  if (!spread()) {
    throw new Error(`after ${maxAttempts} connections the workers hold [${held.join(', ')}] clients, not ${perWorker} each (accept mode ${acceptMode})`);
  }
  return kept;
}

// ---- raw sockets ------------------------------------------------------------------------

/** A frame read off a raw socket (server frames are never masked). */
export interface RawFrame {
  readonly fin: boolean;
  readonly rsv1: boolean;
  readonly opcode: number;
  readonly payload: Buffer;
}

/** A plain TCP connection to the server, buffering everything it reads. */
export class RawConnection {
  readonly socket: Socket;
  buffered: Buffer = Buffer.alloc(0);
  ended = false;
  closed = false;

  constructor(socket: Socket) {
    this.socket = socket;
    rawSockets.add(socket);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  /** `allowHalfOpen` keeps our side open after the server ends its side (a lingering peer). */
  static async open(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<RawConnection> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      'a TCP connection',
    );
    return new RawConnection(socket);
  }

  /** Sends an HTTP request and resolves with the response head (status line and headers). */
  async request(text: string, timeout = 5000): Promise<HttpHead> {
    this.socket.write(text, 'latin1');
    await waitFor(() => this.buffered.includes('\r\n\r\n') || this.closed, 'an HTTP response', timeout);
    const end = this.buffered.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`connection closed without a response: ${JSON.stringify(this.buffered.toString('latin1'))}`);
    const head = parseHead(this.buffered.subarray(0, end).toString('latin1'));
    this.buffered = this.buffered.subarray(end + 4);
    return head;
  }

  /** Reads one complete frame off the buffer. */
  async nextFrame(timeout = 5000): Promise<RawFrame> {
    let frame: { frame: RawFrame; size: number } | null = null;
    await waitFor(() => (frame = parseFrame(this.buffered)) !== null || this.closed, 'a frame', timeout);
    if (frame === null) throw new Error('connection closed before a complete frame arrived');
    const { frame: out, size } = frame as { frame: RawFrame; size: number };
    this.buffered = this.buffered.subarray(size);
    return out;
  }

  /** Reads frames until a close frame; returns its status code (1005 when it has none). */
  async nextClose(timeout = 5000): Promise<{ code: number; skipped: RawFrame[] }> {
    const skipped: RawFrame[] = [];
    const deadline = Date.now() + timeout;
    for (let i = 0; i < 1000; i++) {
      const frame = await this.nextFrame(Math.max(1, deadline - Date.now()));
      if (frame.opcode === 0x8) return { code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005, skipped };
      skipped.push(frame);
    }
    throw new Error('no close frame within 1000 frames');
  }

  waitEnded(timeout = 5000): Promise<void> {
    return waitFor(() => this.ended || this.closed, 'the server to close TCP', timeout);
  }
}

export interface HttpHead {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

function parseHead(text: string): HttpHead {
  const [statusLine, ...lines] = text.split('\r\n');
  const status = Number(statusLine!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}

export function parseFrame(bytes: Buffer): { frame: RawFrame; size: number } | null {
  if (bytes.length < 2) return null;
  let length = bytes[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (bytes.length < 4) return null;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return null;
    length = Number(bytes.readBigUInt64BE(2));
    offset = 10;
  }
  if ((bytes[1]! & 0x80) !== 0) offset += 4;
  if (bytes.length < offset + length) return null;
  const frame = {
    fin: (bytes[0]! & 0x80) !== 0,
    rsv1: (bytes[0]! & 0x40) !== 0,
    opcode: bytes[0]! & 0x0f,
    payload: Buffer.from(bytes.subarray(offset, offset + length)),
  };
  return { frame, size: offset + length };
}

/** An upgrade request as text; `headers` override or add (null removes one). */
export function upgradeRequest(path = '/echo', headers: Readonly<Record<string, string | null>> = {}, method = 'GET'): string {
  const all: Record<string, string | null> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  const lines = Object.entries(all)
    .filter((entry): entry is [string, string] => entry[1] !== null)
    .map(([name, value]) => `${name}: ${value}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/** A raw connection that has completed a valid opening handshake. */
export async function rawWebSocket(port: number, path = '/echo'): Promise<RawConnection> {
  const raw = await RawConnection.open(port);
  const head = await raw.request(upgradeRequest(path));
  if (head.status !== 101) throw new Error(`handshake answered ${head.status}`);
  return raw;
}

/** A client frame; masked unless `mask` is false. `length` overrides the declared length. */
export function clientFrame(opcode: number, payload: Buffer, options: { fin?: boolean; mask?: boolean; length?: number } = {}): Buffer {
  const mask = options.mask ?? true;
  const length = options.length ?? payload.length;
  const head: number[] = [(options.fin ?? true ? 0x80 : 0) | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (length < 126) head.push(maskBit | length);
  else if (length < 65536) head.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    head.push(maskBit | 127, ...big);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, masked]);
}
