import { describe, it, expect, afterEach } from 'vitest';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { resolveConfig } from '../../src/shared/config.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { PresenceTable } from '../../src/shared/presence-table.ts';
import { SlabPool } from '../../src/shared/slab-pool.ts';
import type { WorkerInit, WorkerMessage } from '../../src/shared/thread-messages.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';
import { ShardRuntime } from '../../src/worker/shard-runtime.ts';
import { frameFor } from '../support/frames.ts';
import { until } from '../support/worker-fakes.ts';

const PUBSUB_APP = fileURLToPath(new URL('../fixtures/apps/pubsub.ts', import.meta.url));
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const UPGRADE = `GET /room HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
/** Frames as a client sends them (masked). */
const clientFrame = frameFor('server');

interface Frame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** A raw WebSocket client: the response head, then the (unmasked) frames the server sends. */
class RawClient {
  head = '';
  readonly frames: Frame[] = [];
  closed = false;
  #pending = Buffer.alloc(0);
  readonly socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
  }

  #data(chunk: Buffer): void {
    let bytes = Buffer.concat([this.#pending, chunk]);
    if (!this.head.endsWith('\r\n\r\n')) {
      const end = bytes.indexOf('\r\n\r\n');
      if (end < 0) {
        this.#pending = bytes;
        return;
      }
      this.head = bytes.subarray(0, end + 4).toString('latin1');
      bytes = bytes.subarray(end + 4);
    }
    while (bytes.length >= 2) {
      const length = bytes[1]! & 0x7f;
      const header = length < 126 ? 2 : length === 126 ? 4 : 10;
      const size = length < 126 ? length : length === 126 ? bytes.readUInt16BE(2) : Number(bytes.readBigUInt64BE(2));
      if (bytes.length < header + size) break;
      this.frames.push({ opcode: bytes[0]! & 0x0f, payload: Buffer.from(bytes.subarray(header, header + size)) });
      bytes = bytes.subarray(header + size);
    }
    this.#pending = bytes;
  }

  texts(): string[] {
    return this.frames.filter((f) => f.opcode === Opcode.Text).map((f) => f.payload.toString());
  }
}

const runtimes: { runtime: ShardRuntime; posted: WorkerMessage[] }[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const { runtime, posted } of runtimes.splice(0)) {
    if (!posted.some((m) => m.type === 'stopped')) {
      runtime.onMessage({ type: 'shutdown', grace: 0 });
      await until(() => posted.some((m) => m.type === 'stopped'), 'the runtime to stop');
    }
  }
  for (const cleanup of cleanups.splice(0)) cleanup();
});

interface Shared {
  readonly counters: WorkerCounters;
  readonly pool: SlabPool;
  readonly presence: PresenceTable;
}

/** What the workers of one server share: counters, pool and presence table, every worker marked alive. */
function shared(workers: number): Shared {
  const pool = SlabPool.create({ pageSize: 1024, pageCount: 16, maxWorkers: 4 });
  for (let id = 0; id < workers; id++) pool.markAlive(id, 1);
  return { counters: new WorkerCounters(workers), pool, presence: PresenceTable.create(64, workers) };
}

/** A started runtime serving the pubsub fixture (worker 0 of 1 by default), and a way to hand it loopback sockets. */
async function start(id = 0, { counters, pool, presence }: Shared = shared(1)) {
  const init: WorkerInit = {
    id,
    generation: 1,
    config: resolveConfig({ app: PUBSUB_APP, workers: counters.workers, logLevel: 'silent' }, 1),
    counters: counters.buffer,
    pool: pool.buffer,
    presence: presence.buffer,
    serverId: 'test',
    accept: { mode: 'transfer' },
  };
  const posted: WorkerMessage[] = [];
  const runtime = new ShardRuntime(init, (message) => posted.push(message));
  runtimes.push({ runtime, posted });
  const before = Date.now();
  await runtime.start();

  // Sockets accepted here reach the runtime as the primary's would.
  const listener: Server = createServer((socket) => runtime.onMessage({ type: 'socket', socket }));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const clients: RawClient[] = [];
  cleanups.push(() => {
    for (const client of clients) client.socket.destroy();
    listener.close();
  });
  const port = (listener.address() as AddressInfo).port;
  const client = async (): Promise<RawClient> => {
    const c = new RawClient(connect(port, '127.0.0.1'));
    clients.push(c);
    await once(c.socket, 'connect');
    return c;
  };
  /** A client through its upgrade, greeted by the app. */
  const open = async (): Promise<RawClient> => {
    const c = await client();
    c.socket.write(UPGRADE);
    await until(() => c.texts().length > 0, 'the greeting');
    return c;
  };
  return { runtime, posted, slot: counters.slot(id), before, client, open };
}

describe('ShardRuntime', () => {
  it('loads the app, writes its heartbeat and posts ready', async () => {
    const { runtime, posted, slot, before } = await start();
    expect(posted).toEqual([{ type: 'ready' }]);
    expect(slot[Counter.Heartbeat]).toBeGreaterThanOrEqual(before);
    expect(slot[Counter.Heartbeat]).toBeLessThanOrEqual(Date.now());
    expect(runtime.shard).toMatchObject({ id: 0, count: 1 });
  });

  it('serves a socket the primary hands it: upgrade, app handlers, pub/sub between its connections', async () => {
    const { runtime, slot, open } = await start();
    const a = await open();
    const b = await open();
    expect(a.head).toMatch(/^HTTP\/1\.1 101 /);
    expect(a.texts()).toEqual(['{"hello":0}']);
    expect(slot[Counter.Connections]).toBe(2);
    expect(slot[Counter.SocketsAdopted]).toBe(2);
    expect(runtime.shard.subscriberCount('room')).toBe(2);

    a.socket.write(clientFrame(Opcode.Text, 'hi from a'));
    await until(() => b.texts().length > 1, 'the publish at b');
    expect(b.texts()[1]).toBe('hi from a');
    expect(a.texts()).toHaveLength(1); // not back to the sender

    // A publish entering from the primary reaches every subscriber.
    runtime.onMessage({ type: 'publish', topic: 'room', data: new TextEncoder().encode('news'), binary: false, fromBridge: false });
    await until(() => a.texts().length > 1 && b.texts().length > 2, 'the primary publish');
    expect(a.texts()[1]).toBe('news');
    expect(b.texts()[2]).toBe('news');
  });

  it('on shutdown closes connections with 1001, refuses new sockets and posts stopped', async () => {
    const { runtime, posted, slot, open, client } = await start();
    const a = await open();
    const b = await open();
    runtime.onMessage({ type: 'shutdown', grace: 5 });
    await until(() => a.frames.some((f) => f.opcode === Opcode.Close) && b.frames.some((f) => f.opcode === Opcode.Close), 'the close frames');
    for (const c of [a, b]) {
      const close = c.frames.find((f) => f.opcode === Opcode.Close)!;
      expect(close.payload.readUInt16BE(0)).toBe(1001);
      expect(close.payload.subarray(2).toString()).toBe('server shutting down');
    }
    // Still closing: the runtime waits for the clients' answers, and takes no new sockets.
    expect(posted.some((m) => m.type === 'stopped')).toBe(false);
    const late = await client();
    late.socket.write(UPGRADE);
    await until(() => late.closed, 'the late socket to be refused');
    expect(late.head).toMatch(/^HTTP\/1\.1 503 /);

    for (const c of [a, b]) c.socket.write(clientFrame(Opcode.Close, Buffer.from([0x03, 0xe9])));
    await until(() => posted.some((m) => m.type === 'stopped'), 'stopped');
    expect(posted.map((m) => m.type)).toEqual(['ready', 'stopped']);
    expect(slot[Counter.Connections]).toBe(0);
    expect(slot[Counter.Closes1001]).toBe(2);
    await until(() => a.closed && b.closed, 'the sockets to close');
  });

  it('joins a peer worker it is told of: publishes cross to its subscribers', async () => {
    const both = shared(2);
    const zero = await start(0, both);
    const one = await start(1, both);
    const { port1, port2 } = new MessageChannel();
    zero.runtime.onMessage({ type: 'peer', worker: 1, generation: 1, port: port1 });
    one.runtime.onMessage({ type: 'peer', worker: 0, generation: 1, port: port2 });
    const a = await zero.open();
    const b = await one.open();
    expect(b.texts()).toEqual(['{"hello":1}']);
    // Worker 0 learns of worker 1's subscriber through the mesh; then a's publishes cross.
    await until(() => {
      if (b.texts().length > 1) return true;
      a.socket.write(clientFrame(Opcode.Text, 'across'));
      return false;
    }, 'a publish to cross');
    expect(b.texts()[1]).toBe('across');
    expect(both.counters.get(1, Counter.PublishesIn)).toBeGreaterThan(0);
  });

  it('keeps beating: the heartbeat slot moves on', async () => {
    const { slot } = await start();
    const first = slot[Counter.Heartbeat]!;
    await until(() => slot[Counter.Heartbeat]! > first, 'the next heartbeat', 2000);
  });
});
