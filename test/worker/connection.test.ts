import { afterEach, describe, expect, it, vi } from 'vitest';
import type { App, MessageData, SendOptions, ServerWebSocket, Shard } from '../../src/shared/app.ts';
import { ReadyState } from '../../src/shared/app.ts';
import { encodeClosePayload } from '../../src/shared/close.ts';
import { encodeFrame } from '../../src/shared/frame-encoder.ts';
import { ByteArena } from '../../src/shared/frame-writer.ts';
import { SYNC_COMPRESS_LIMIT, messageCompression } from '../../src/shared/message-compression.ts';
import type { MessageCompression } from '../../src/shared/message-compression.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { PerMessageDeflate, deflateMessageShared } from '../../src/shared/permessage-deflate.ts';
import { PreparedMessage } from '../../src/shared/prepared-message.ts';
import type { WindowBits } from '../../src/shared/permessage-deflate.ts';
import { Counter } from '../../src/shared/worker-counters.ts';
import { FlushScheduler } from '../../src/runtime/frame-flush.ts';
import { Connection, kBackloggedSince, kLastActive, kSendPrepared, kStalled, kStart } from '../../src/worker/connection.ts';
import type { ConnectionContext, TopicMembership } from '../../src/worker/connection.ts';
import { appSlowClientPolicy, closeSlowClients, dropForSlowClients } from '../../src/worker/send-admission.ts';
import type { OverLimit, OverLimitVerdict, SendLimits, SlowClientPolicy } from '../../src/worker/send-admission.ts';
import { FakeSocket, closeOf, readFrames, recordingLogger, settle } from '../support/fake-socket.ts';
import type { WireFrame } from '../support/fake-socket.ts';
import { frameFor, keys } from '../support/frames.ts';
import { testDirectory } from '../support/worker-fakes.ts';

// ---- the world a connection lives in ------------------------------------------------------

/** Frames as a client sends them (masked). */
const client = frameFor('server');
const clientClose = (code?: number, reason = ''): Buffer => client(Opcode.Close, encodeClosePayload(code, reason));

/** The topic registry as a connection sees it, recording each call. */
class FakeTopics implements TopicMembership {
  readonly calls: string[] = [];
  readonly publishes: { topic: string; data: MessageData; options: SendOptions | undefined; except: Connection | null }[] = [];
  subscribe(connection: Connection, topic: string): number {
    this.calls.push(`subscribe ${String(connection.data)} ${topic}`);
    return 1;
  }
  unsubscribe(connection: Connection, topic: string): number {
    this.calls.push(`unsubscribe ${String(connection.data)} ${topic}`);
    return 0;
  }
  publish(topic: string, data: MessageData, options: SendOptions | undefined, except: Connection | null): undefined {
    this.publishes.push({ topic, data, options, except });
  }
}

/** What the app's handlers saw, each entry led by the connection's `data` (its name here). */
type AppEvent = readonly unknown[];

/**
 * An app that records every handler call in `events`; `handlers` replaces or adds handlers
 * (each still recorded first).
 */
function recordingApp(handlers: Partial<App<unknown>> = {}) {
  const events: AppEvent[] = [];
  const name = (ws: ServerWebSocket<unknown>) => ws.data;
  const app: App<unknown> = {
    open(ws) {
      events.push([name(ws), 'open']);
      handlers.open?.(ws);
    },
    message(ws, data, isBinary) {
      events.push([name(ws), 'message', isBinary ? data.toString('hex') : data.toString(), isBinary]);
      handlers.message?.(ws, data, isBinary);
    },
    close(ws, code, reason) {
      events.push([name(ws), 'close', code, reason]);
      handlers.close?.(ws, code, reason);
    },
    drain(ws) {
      events.push([name(ws), 'drain', ws.bufferedAmount]);
      handlers.drain?.(ws);
    },
    ping(ws, data) {
      events.push([name(ws), 'ping', data.toString()]);
      handlers.ping?.(ws, data);
    },
    pong(ws, data) {
      events.push([name(ws), 'pong', data.toString()]);
      handlers.pong?.(ws, data);
    },
    dropped(ws, data, isBinary) {
      events.push([name(ws), 'dropped', isBinary ? data.length : data.toString(), isBinary]);
      handlers.dropped?.(ws, data, isBinary);
    },
  };
  return { app, events };
}

interface WorldOptions {
  readonly app?: App<unknown>;
  readonly limits?: SendLimits;
  readonly lowWaterMark?: number;
  readonly slowClient?: SlowClientPolicy;
  readonly maxPayloadLength?: number;
  readonly reading?: ConnectionContext['reading'];
  readonly autoPong?: boolean;
}

const DEFAULT_LIMITS: SendLimits = { highWaterMark: 16 * 1024, maxBackpressure: 1024 * 1024 };

/** The context every connection of one fake worker shares. */
function world(options: WorldOptions = {}) {
  const logger = recordingLogger();
  const counters = new Float64Array(32);
  const topics = new FakeTopics();
  const backlogged = new Set<Connection>();
  const closed: Connection[] = [];
  const idle = { tick: 0 };
  const recorded = options.app === undefined ? recordingApp() : null;
  const ctx: ConnectionContext = {
    app: options.app ?? recorded!.app,
    shard: { id: 0, count: 1 } as unknown as Shard,
    logger,
    arena: new ByteArena(),
    scheduler: new FlushScheduler(),
    counters,
    maxPayloadLength: options.maxPayloadLength ?? 1024 * 1024,
    reading: options.reading ?? { maxFrameSize: Infinity, maxFragments: Infinity, validateUtf8: true },
    autoPong: options.autoPong ?? true,
    limits: options.limits ?? DEFAULT_LIMITS,
    lowWaterMark: options.lowWaterMark ?? 0,
    slowClient: options.slowClient ?? closeSlowClients,
    close: { closeTimeoutMs: 10_000, logger },
    topics,
    directory: testDirectory(),
    idle,
    backlogged,
    closed: (connection) => closed.push(connection),
  };
  return { ctx, logger, counters, topics, backlogged, closed, idle, events: recorded?.events ?? [] };
}

type World = ReturnType<typeof world>;

/** Sockets of the current test, destroyed after it (which closes codecs and close timers). */
const sockets: FakeSocket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

/** A connection on a fresh FakeSocket, started (open handler run). */
function connect(w: World, name = 'a', options: { compression?: MessageCompression | null; socket?: FakeSocket; head?: Buffer } = {}) {
  const socket = options.socket ?? new FakeSocket();
  sockets.push(socket);
  const ws = new Connection(socket, w.ctx, {
    data: name,
    remoteAddress: `198.51.100.${name.charCodeAt(0)}`,
    protocol: '',
    extensions: options.compression ? 'permessage-deflate' : '',
    compression: options.compression ?? null,
  });
  ws[kStart](options.head ?? Buffer.alloc(0));
  return { ws, socket };
}

/** One connection in its own world. */
function setup(options: WorldOptions & { compression?: MessageCompression | null } = {}) {
  const w = world(options);
  const { ws, socket } = connect(w, 'a', { compression: options.compression ?? null });
  return { ...w, ws, socket };
}

const frames = (socket: FakeSocket): WireFrame[] => readFrames(socket.output);
const OP_NAMES: Record<Opcode, string> = { 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

/** What the client received, one line a frame: `text hello`, `binary <length>`, `close <code> <reason>`. */
const summary = (socket: FakeSocket): string[] =>
  frames(socket).map((f) => {
    if (f.opcode === Opcode.Close) return `close ${closeOf(f).code} ${closeOf(f).reason}`.trimEnd();
    const body = f.opcode === Opcode.Binary ? String(f.payload.length) : f.payload.toString();
    return `${OP_NAMES[f.opcode]}${f.rsv1 ? '+rsv1' : ''} ${body}`;
  });

const PARAMS = { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 15 as WindowBits, clientMaxWindowBits: 15 as WindowBits };

/**
 * permessage-deflate as negotiated with a client, on the older split (zlib contexts off) so the
 * pool path is exercised: `noContext` keeps our direction synchronous there.
 */
function deflate(options: { noContext?: boolean; window?: WindowBits; threshold?: number; onThread?: boolean } = {}): MessageCompression {
  const codec = new PerMessageDeflate(
    'server',
    { ...PARAMS, serverNoContextTakeover: options.noContext ?? true, serverMaxWindowBits: options.window ?? 15 },
    { maxMessageSize: 1 << 22, threshold: options.threshold ?? 0, onThread: options.onThread ?? false },
  );
  return messageCompression(codec);
}

/** The server's compressed frame, inflated back. */
const inflate = (frame: WireFrame): string => {
  const codec = new PerMessageDeflate('client', { ...PARAMS, serverNoContextTakeover: true }, { maxMessageSize: 1 << 22 });
  try {
    return codec.decompressSync(frame.payload).toString();
  } finally {
    codec.close();
  }
};

// ---- the tests ------------------------------------------------------------------------------

describe('Connection: the ws object', () => {
  it('exposes only the public ServerWebSocket API as string keys, own or inherited', () => {
    const { ws } = setup();
    expect(Object.getOwnPropertyNames(ws).sort()).toEqual(['data', 'extensions', 'id', 'protocol', 'remoteAddress']);
    expect(Object.getOwnPropertySymbols(ws)).toEqual([]);
    const proto = Object.getPrototypeOf(ws) as object;
    expect(Object.getOwnPropertyNames(proto).sort()).toEqual(
      ['bufferedAmount', 'close', 'constructor', 'isSubscribed', 'ping', 'pong', 'publish', 'readyState', 'send', 'sendFragment', 'shard', 'subscribe', 'tag', 'tags', 'terminate', 'topics', 'unsubscribe', 'untag'].sort(),
    );
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.getOwnPropertyNames(Connection).sort()).toEqual(['length', 'name', 'prototype']);
    for (const internal of ['onMessage', 'onData', 'flush', 'pump', 'idleTicks', 'lastActive', 'sendPrepared', 'start', 'queue', 'socket', 'sink', 'reader', 'encoder']) {
      expect(internal in ws, internal).toBe(false);
    }
    // What the other worker modules use is keyed by symbols the package does not export.
    expect(Object.getOwnPropertySymbols(proto)).toEqual(expect.arrayContaining([kStart, kSendPrepared, kLastActive]));
  });

  it('carries what the upgrade settled and the shard', () => {
    const w = world();
    const { ws } = connect(w, 'x');
    expect([ws.data, ws.remoteAddress, ws.protocol, ws.extensions]).toEqual(['x', '198.51.100.120', '', '']);
    expect(ws.shard).toBe(w.ctx.shard);
    expect(ws.readyState).toBe(ReadyState.Open);
    expect(ws.bufferedAmount).toBe(0);
  });

  it('counts the connection from construction, and uncounts it when the socket closes', async () => {
    const w = world();
    const { socket } = connect(w);
    connect(w, 'b');
    expect(w.counters[Counter.Connections]).toBe(2);
    socket.destroy();
    await settle(1);
    expect(w.counters[Counter.Connections]).toBe(1);
  });
});

describe('Connection: sending', () => {
  it("writes at once ('written'): one write per turn, frames in the order sent", async () => {
    const { ws, socket, counters } = setup();
    expect(ws.send('one')).toBe('written');
    expect(ws.send(Buffer.from([1, 2, 3]))).toBe('written');
    expect(ws.send('three', { binary: true })).toBe('written');
    expect(ws.send(new Uint8Array([4, 5]).buffer)).toBe('written');
    expect(ws.send(Buffer.from('as text'), { binary: false })).toBe('written');
    expect(socket.writes).toEqual([]);
    expect(ws.bufferedAmount).toBe(5 + 5 + 7 + 4 + 9);
    await settle();
    expect(socket.writes).toHaveLength(1);
    expect(summary(socket)).toEqual(['text one', 'binary 3', 'binary 5', 'binary 2', 'text as text']);
    expect(frames(socket)[1]!.payload).toEqual(Buffer.from([1, 2, 3]));
    expect(counters[Counter.MessagesOut]).toBe(5);
    expect(counters[Counter.BytesOut]).toBe(socket.output.length);
    expect(ws.bufferedAmount).toBe(0);
  });

  it('copies what waits and what is small before send returns; a large buffer written at once goes out as the caller’s, as socket.write takes it', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 150_000, maxBackpressure: 1_000_000 } });
    const small = Buffer.alloc(100, 8);
    const large = Buffer.alloc(100_000, 7);
    expect(ws.send(small)).toBe('written');
    expect(ws.send(large)).toBe('written');
    // Changed before the turn's flush: the small one was copied into the frame, the large one
    // is the caller's until the socket has it (MessageData).
    small.fill(0);
    large.fill(1);
    socket.stall();
    await settle();
    const queuedSmall = Buffer.alloc(100, 9);
    const queuedLarge = Buffer.alloc(60_000, 6);
    expect(ws.send(Buffer.alloc(60_000, 5))).toBe('written');
    expect(ws.send(queuedLarge)).toBe('buffered');
    expect(ws.send(queuedSmall)).toBe('buffered');
    for (const buffer of [queuedLarge, queuedSmall]) buffer.fill(0);
    socket.unstall();
    await settle();
    expect(frames(socket).map((f) => [f.payload.length, f.payload[0], f.payload.at(-1)])).toEqual([
      [100, 8, 8],
      [100_000, 1, 1],
      [60_000, 5, 5],
      [60_000, 6, 6],
      [100, 9, 9],
    ]);
  });

  it("queues behind a slow socket ('buffered'), writes the queue as it drains, in order, then says drain", async () => {
    const { ws, socket, counters, backlogged, events } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 100_000 }, lowWaterMark: 100 });
    socket.stall();
    const sent = ['A', 'B', 'C', 'D'].map((name) => ws.send(Buffer.alloc(600, name.charCodeAt(0))));
    expect(sent).toEqual(['written', 'written', 'buffered', 'buffered']);
    expect(counters[Counter.BackpressureEvents]).toBe(2);
    expect(backlogged.has(ws)).toBe(true);
    expect(ws.bufferedAmount).toBe(2 * 604 + 2 * 600);
    await settle();
    // A and B are with the kernel, which takes no more; C and D wait.
    expect(frames(socket).map((f) => f.payload[0])).toEqual([0x41, 0x42]);
    expect(ws.bufferedAmount).toBe(2 * 604 + 2 * 600);
    expect(events.filter((e) => e[1] === 'drain')).toEqual([]);
    socket.unstall();
    await settle();
    expect(frames(socket).map((f) => f.payload[0])).toEqual([0x41, 0x42, 0x43, 0x44]);
    expect(events.filter((e) => e[1] === 'drain')).toEqual([['a', 'drain', 0]]);
    expect(backlogged.has(ws)).toBe(false);
    expect(ws.bufferedAmount).toBe(0);
  });

  it('picks the queue up on the socket’s own drain event as well', async () => {
    // The socket's write buffer limit sits below ours: write() says false and 'drain' follows.
    const w = world({ limits: { highWaterMark: 1000, maxBackpressure: 100_000 } });
    const { ws, socket } = connect(w, 'a', { socket: new FakeSocket({ highWaterMark: 500 }) });
    socket.stall();
    ws.send(Buffer.alloc(1500, 1));
    await settle();
    expect(ws.send('queued')).toBe('buffered');
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 1500', 'text queued']);
  });

  // The flush hook once asked for a write callback only when the queue was non-empty (or a
  // drain was owed) at flush time. A message queued after the flush, behind a write still in
  // the kernel, then waited for the socket's 'drain', which never comes when the socket's own
  // high-water mark (64 KiB) is above ours and write() said true.
  it('a message queued behind a write still in flight goes out when that write completes (highWaterMark below the socket’s)', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(1500, 1));
    await settle(); // flushed: 1504 bytes in flight, nothing queued at flush time
    expect(ws.send('queued')).toBe('buffered');
    socket.unstall();
    await settle(6);
    expect(summary(socket)).toEqual(['binary 1500', 'text queued']);
  });

  it('moves the queue to the socket only while it keeps up: what still waits can be dropped for a later message', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 2000 }, slowClient: dropForSlowClients });
    socket.stall();
    ws.send(Buffer.alloc(150, 0x41)); // written: 152 bytes
    expect(ws.send(Buffer.alloc(300, 0x4c), { priority: 'low' })).toBe('buffered');
    await settle(); // the first write is in flight
    ws.ping(Buffer.alloc(125)); // a second write (127 bytes) behind it
    await settle();
    socket.completeOne(); // the first completes; 127 bytes, over the high-water mark, still wait
    await settle();
    // The low message is still in the queue, so it can make room for a normal one.
    expect(ws.send(Buffer.alloc(1800, 0x4e))).toBe('buffered');
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 150', `ping ${'\0'.repeat(125)}`, 'binary 1800']);
  });

  it('drain fires only once the backlog falls to the low-water mark, and once', async () => {
    const { ws, socket, events } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 100_000 }, lowWaterMark: 0 });
    socket.stall();
    ws.send(Buffer.alloc(1500));
    ws.send(Buffer.alloc(1500));
    await settle();
    socket.unstall();
    await settle();
    expect(events.filter((e) => e[1] === 'drain')).toEqual([['a', 'drain', 0]]);
    ws.send('more');
    await settle();
    expect(events.filter((e) => e[1] === 'drain')).toHaveLength(1);
  });

  it('a drain handler that throws closes the connection with 1011', async () => {
    const { app, events } = recordingApp({
      drain: () => {
        throw new Error('drain bug');
      },
    });
    const { ws, socket, logger } = setup({ app, limits: { highWaterMark: 1000, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(1500));
    ws.send(Buffer.alloc(10));
    await settle();
    socket.unstall();
    await settle();
    expect(events.map((e) => e[1])).toEqual(['open', 'drain']);
    expect(summary(socket).at(-1)).toBe('close 1011 internal error');
    expect(logger.records.some((r) => r.level === 'error')).toBe(true);
  });

  it('high-priority messages leave the queue first, low ones last', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(200));
    ws.send('low', { priority: 'low' });
    ws.send('normal');
    ws.send('high', { priority: 'high' });
    await settle();
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 200', 'text high', 'text normal', 'text low']);
  });

  describe('past maxBackpressure', () => {
    it("'close': drops the message, closes with 1008, and says 'dropped' from then on", async () => {
      const { ws, socket, counters, logger } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: closeSlowClients });
      socket.stall();
      expect(ws.send(Buffer.alloc(1500, 1))).toBe('written');
      expect(ws.send(Buffer.alloc(1500, 2))).toBe('dropped');
      expect(counters[Counter.Drops]).toBe(1);
      expect(ws.readyState).toBe(ReadyState.Closing);
      expect(ws.send('late')).toBe('dropped');
      expect(logger.records.some((r) => r.level === 'warn')).toBe(true);
      socket.unstall();
      await settle();
      expect(summary(socket)).toEqual(['binary 1500', 'close 1008 slow client']);
      expect(socket.writableEnded).toBe(true);
    });

    it("'drop': drops queued low-priority messages to make room, then the message itself if it still does not fit", async () => {
      const { ws, socket, counters } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: dropForSlowClients });
      socket.stall();
      expect(ws.send(Buffer.alloc(1500, 0x41))).toBe('written'); // 1504 buffered
      expect(ws.send(Buffer.alloc(400, 0x4c), { priority: 'low' })).toBe('buffered'); // L1
      expect(ws.send(Buffer.alloc(400, 0x4d), { priority: 'low' })).toBe('buffered'); // L2
      // 2304 + 1000 > 3000: L1 goes, which is enough (1504 + 400 + 1000 = 2904).
      expect(ws.send(Buffer.alloc(1000, 0x4e))).toBe('buffered');
      expect(counters[Counter.Drops]).toBe(1);
      // A low message over the limit is dropped outright.
      expect(ws.send(Buffer.alloc(400, 0x4f), { priority: 'low' })).toBe('dropped');
      expect(counters[Counter.Drops]).toBe(2);
      // A normal one that does not fit even without the low ones: they go all the same
      // (L2), then it is dropped too; the connection stays.
      expect(ws.send(Buffer.alloc(500, 0x50))).toBe('dropped');
      expect(counters[Counter.Drops]).toBe(4);
      expect(ws.readyState).toBe(ReadyState.Open);
      socket.unstall();
      await settle();
      expect(frames(socket).map((f) => [f.payload[0], f.payload.length])).toEqual([
        [0x41, 1500],
        [0x4e, 1000],
      ]);
    });

    it("a policy that says 'queue' queues past the limit", async () => {
      const queueAnyway: SlowClientPolicy = { overLimit: () => 'queue', stalled: () => 'wait' };
      const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: queueAnyway });
      socket.stall();
      ws.send(Buffer.alloc(1500));
      expect(ws.send(Buffer.alloc(2000))).toBe('buffered');
      expect(ws.bufferedAmount).toBe(1504 + 2000);
      socket.unstall();
      await settle();
      expect(summary(socket)).toEqual(['binary 1500', 'binary 2000']);
    });

    it('the policy sees the connection, the bytes buffered, the size, the priority and the limit', () => {
      const overLimit = vi.fn((_message: OverLimit): OverLimitVerdict => 'drop');
      const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: { overLimit, stalled: () => 'wait' } });
      socket.stall();
      ws.send(Buffer.alloc(1500));
      ws.send(Buffer.alloc(2000), { priority: 'high' });
      expect(overLimit).toHaveBeenCalledTimes(1);
      expect(overLimit.mock.calls[0]![0]).toMatchObject({ ws, buffered: 1504, size: 2000, priority: 'high', limit: 3000 });
    });

    it('a message larger than the limit still goes out on an idle connection', async () => {
      const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 } });
      expect(ws.send(Buffer.alloc(10_000))).toBe('written');
      await settle();
      expect(summary(socket)).toEqual(['binary 10000']);
    });
  });

  it("says 'dropped' once closing and once closed, and writes nothing", async () => {
    const { ws, socket } = setup();
    ws.close();
    expect(ws.send('x')).toBe('dropped');
    await settle();
    socket.destroy();
    await settle(1);
    expect(ws.readyState).toBe(ReadyState.Closed);
    expect(ws.send('y')).toBe('dropped');
    expect(summary(socket)).toEqual(['close 1000']);
  });

  it('ping() sends a ping; over 125 bytes it throws; once closing it does nothing', async () => {
    const { ws, socket } = setup();
    ws.ping();
    ws.ping('hello');
    expect(() => ws.ping(Buffer.alloc(126))).toThrow(RangeError);
    ws.close();
    ws.ping('late');
    await settle();
    expect(summary(socket)).toEqual(['ping ', 'ping hello', 'close 1000']);
  });
});

describe('Connection: reading', () => {
  it('delivers messages to the app and counts them with their bytes', () => {
    const { ws, socket, events, counters } = setup();
    const one = client(Opcode.Text, 'hello');
    const two = client(Opcode.Binary, Buffer.from([0xca, 0xfe]));
    socket.receive(Buffer.concat([one, two]));
    expect(events.slice(1)).toEqual([
      ['a', 'message', 'hello', false],
      ['a', 'message', 'cafe', true],
    ]);
    expect(counters[Counter.MessagesIn]).toBe(2);
    expect(counters[Counter.BytesIn]).toBe(one.length + two.length);
    expect(ws.readyState).toBe(ReadyState.Open);
  });

  it('assembles a message split at every byte and over fragments', () => {
    const { socket, events } = setup();
    const bytes = Buffer.concat([client(Opcode.Text, 'frag', { fin: false }), client(Opcode.Continuation, 'mented')]);
    for (let i = 0; i < bytes.length; i++) socket.receive(bytes.subarray(i, i + 1));
    expect(events.slice(1)).toEqual([['a', 'message', 'fragmented', false]]);
  });

  it('answers a ping with a pong carrying the same data, and tells the app', async () => {
    const { socket, events } = setup();
    socket.receive(client(Opcode.Ping, 'are you there'));
    socket.receive(client(Opcode.Ping, ''));
    await settle();
    expect(summary(socket)).toEqual(['pong are you there', 'pong ']);
    expect(events.slice(1)).toEqual([
      ['a', 'ping', 'are you there'],
      ['a', 'ping', ''],
    ]);
  });

  it('a pong is only told to the app', async () => {
    const { socket, events } = setup();
    socket.receive(client(Opcode.Pong, 'yes'));
    await settle();
    expect(socket.writes).toEqual([]);
    expect(events.slice(1)).toEqual([['a', 'pong', 'yes']]);
  });

  it('once closing, messages still arriving are counted but not handed to the app', async () => {
    const { ws, socket, events, counters } = setup();
    ws.close(1000);
    socket.receive(client(Opcode.Text, 'too late'));
    expect(counters[Counter.MessagesIn]).toBe(1);
    expect(events.filter((e) => e[1] === 'message')).toEqual([]);
    socket.receive(clientClose(1000));
    socket.peerEnd();
    await settle();
    expect(events.slice(1)).toEqual([['a', 'close', 1000, '']]);
  });

  it('does not answer a ping once closing', async () => {
    const { ws, socket } = setup();
    ws.close(1000);
    socket.receive(client(Opcode.Ping, 'late'));
    await settle();
    expect(summary(socket)).toEqual(['close 1000']);
  });

  it('stamps the idle sweep’s tick on every read', () => {
    const { ws, socket, idle } = setup();
    expect(ws[kLastActive]).toBe(0);
    idle.tick = 7;
    expect(ws[kLastActive]).toBe(0);
    socket.receive(client(Opcode.Pong, ''));
    expect(ws[kLastActive]).toBe(7);
    idle.tick = 9;
    socket.receive(client(Opcode.Text, 'x').subarray(0, 1)); // even a partial frame
    expect(ws[kLastActive]).toBe(9);
  });

  it('reads the bytes that came with the upgrade after open', () => {
    const w = world();
    connect(w, 'a', { head: Buffer.concat([client(Opcode.Text, 'early'), client(Opcode.Text, 'bird')]) });
    expect(w.events).toEqual([
      ['a', 'open'],
      ['a', 'message', 'early', false],
      ['a', 'message', 'bird', false],
    ]);
  });

  it('inflates a compressed message when permessage-deflate was negotiated', () => {
    const { socket, events } = setup({ compression: deflate() });
    const compressed = deflateMessageShared(Buffer.from('squeezed '.repeat(20)), 15);
    socket.receive(encodeFrame(Opcode.Text, compressed, { rsv1: true, maskKeys: keys }));
    expect(events.slice(1)).toEqual([['a', 'message', 'squeezed '.repeat(20), false]]);
  });

  it('stops reading the socket while a message inflates with much behind it, and reads on after', () => {
    let finish: ((error: null, data: Buffer) => void) | null = null;
    const held: MessageCompression = {
      ...fakeCompression(),
      inflater: { synchronous: false, decompress: (_data, _fin, callback) => void (finish = callback) },
    };
    const { socket, events } = setup({ compression: held, maxPayloadLength: 1 << 21 });
    socket.receive(encodeFrame(Opcode.Text, Buffer.from('zzz'), { rsv1: true, maskKeys: keys }));
    expect(socket.isPaused()).toBe(false);
    // The parser unmasks in place: each frame its own buffer.
    socket.receive(client(Opcode.Binary, Buffer.alloc(600 * 1024, 1)));
    expect(socket.isPaused()).toBe(false);
    socket.receive(client(Opcode.Binary, Buffer.alloc(600 * 1024, 2)));
    expect(socket.isPaused()).toBe(true);
    finish!(null, Buffer.from('inflated'));
    expect(socket.isPaused()).toBe(false);
    expect(events.slice(1).map((e) => [e[1], String(e[2]).slice(0, 8), String(e[2]).length])).toEqual([
      ['message', 'inflated', 8],
      ['message', '01010101', 2 * 600 * 1024],
      ['message', '02020202', 2 * 600 * 1024],
    ]);
  });
});

describe('Connection: closing', () => {
  it('from our side: the close frame, then the peer’s reply and FIN end it with the peer’s code', async () => {
    const { ws, socket, events, counters, closed, backlogged } = setup();
    ws.close(1000, 'bye');
    expect(ws.readyState).toBe(ReadyState.Closing);
    ws.close(1001, 'again'); // ignored
    await settle();
    expect(summary(socket)).toEqual(['close 1000 bye']);
    expect(socket.writableEnded).toBe(false);
    socket.receive(clientClose(1000, 'ok'));
    await settle();
    expect(socket.writableEnded).toBe(true);
    socket.peerEnd();
    await settle();
    expect(socket.destroyed).toBe(true);
    expect(ws.readyState).toBe(ReadyState.Closed);
    expect(events.slice(1)).toEqual([['a', 'close', 1000, 'ok']]);
    expect(counters[Counter.Closes1000]).toBe(1);
    expect(counters[Counter.Connections]).toBe(0);
    expect(closed).toEqual([ws]);
    expect(backlogged.size).toBe(0);
    expect(summary(socket)).toEqual(['close 1000 bye']);
  });

  it('from the peer’s side: echoes its code (without the reason), ends our side, reports its code and reason', async () => {
    const { ws, socket, events, counters } = setup();
    socket.receive(clientClose(1001, 'going away'));
    expect(ws.readyState).toBe(ReadyState.Closing);
    await settle();
    expect(summary(socket)).toEqual(['close 1001']);
    expect(socket.writableEnded).toBe(true);
    socket.peerEnd();
    await settle();
    expect(events.slice(1)).toEqual([['a', 'close', 1001, 'going away']]);
    expect(counters[Counter.Closes1001]).toBe(1);
  });

  it('a peer close frame without a code is answered with an empty one and reported as 1005', async () => {
    const { socket, events, counters } = setup();
    socket.receive(client(Opcode.Close, Buffer.alloc(0)));
    await settle();
    expect(frames(socket)).toHaveLength(1);
    expect(frames(socket)[0]!.payload).toEqual(Buffer.alloc(0));
    socket.peerEnd();
    await settle();
    expect(events.slice(1)).toEqual([['a', 'close', 1005, '']]);
    expect(counters[Counter.ClosesOther]).toBe(1);
  });

  it('the peer’s close drops what was still queued for it', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(200));
    ws.send('never');
    await settle();
    socket.receive(clientClose(1000));
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 200', 'close 1000']);
  });

  it('our close frame waits for the queued messages, and goes right after them', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(200));
    ws.send('queued 1');
    ws.send('queued 2');
    ws.close(4000, 'done');
    await settle();
    expect(summary(socket)).toEqual(['binary 200']);
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 200', 'text queued 1', 'text queued 2', 'close 4000 done']);
  });

  it('a peer that never answers: 1006 for the app, our code counted as exchanged', async () => {
    const { ws, socket, events, counters } = setup();
    ws.close(1000);
    await settle();
    socket.destroy(); // the close timer, or the network
    await settle(1);
    expect(events.slice(1)).toEqual([['a', 'close', 1006, '']]);
    expect(counters[Counter.Closes1000]).toBe(1);
    expect(counters[Counter.Closes1006]).toBe(0);
  });

  it('the peer’s FIN without a close frame ends our side; the app hears 1006', async () => {
    const { socket, events, counters } = setup();
    socket.peerEnd();
    await settle();
    expect(socket.writableEnded).toBe(true);
    expect(socket.destroyed).toBe(true);
    expect(socket.writes).toEqual([]);
    expect(events.slice(1)).toEqual([['a', 'close', 1006, '']]);
    expect(counters[Counter.Closes1006]).toBe(1);
  });

  it('the peer’s FIN while a message inflates waits for it: the message is delivered and answered first', async () => {
    let finish: ((error: null, data: Buffer) => void) | null = null;
    const held: MessageCompression = {
      ...fakeCompression(),
      inflater: { synchronous: false, decompress: (_data, _fin, callback) => void (finish = callback) },
    };
    const { app, events } = recordingApp({ message: (ws, data) => ws.send(data.toString(), { compress: false }) });
    const { socket } = setup({ app, compression: held });
    socket.receive(encodeFrame(Opcode.Text, Buffer.from('zz'), { rsv1: true, maskKeys: keys }));
    socket.receive(client(Opcode.Text, 'behind'));
    socket.peerEnd();
    await settle();
    expect(socket.writableEnded).toBe(false);
    finish!(null, Buffer.from('last words'));
    await settle();
    expect(events.slice(1, 3)).toEqual([
      ['a', 'message', 'last words', false],
      ['a', 'message', 'behind', false],
    ]);
    expect(summary(socket)).toEqual(['text last words', 'text behind']);
    expect(socket.writableEnded).toBe(true);
  });

  it('terminate() destroys the socket without a close frame', async () => {
    const { ws, socket, events } = setup();
    ws.terminate();
    expect(ws.readyState).toBe(ReadyState.Closing);
    await settle(1);
    expect(socket.destroyed).toBe(true);
    expect(socket.writes).toEqual([]);
    expect(events.slice(1)).toEqual([['a', 'close', 1006, '']]);
    ws.terminate(); // harmless once closed
  });

  it('close() refuses a code that may not be sent and stays open', () => {
    const { ws } = setup();
    expect(() => ws.close(1005)).toThrow(RangeError);
    expect(ws.readyState).toBe(ReadyState.Open);
  });

  it('a close handler that throws is logged, nothing more', async () => {
    const { app } = recordingApp({
      close: () => {
        throw new Error('close bug');
      },
    });
    const { socket, logger } = setup({ app });
    socket.destroy();
    await settle(1);
    expect(logger.records.filter((r) => r.level === 'error')).toHaveLength(1);
  });

  it('a socket error is logged at debug and the close follows as usual', async () => {
    const { socket, logger, events } = setup();
    socket.destroy(new Error('ECONNRESET'));
    await settle(1);
    expect(logger.records.some((r) => r.level === 'debug')).toBe(true);
    expect(events.slice(1)).toEqual([['a', 'close', 1006, '']]);
  });
});

describe('Connection: protocol errors', () => {
  const failsWith = async (bytes: Buffer, code: number, options: WorldOptions = {}) => {
    const { ws, socket, counters, events } = setup(options);
    socket.receive(bytes);
    expect(ws.readyState).toBe(ReadyState.Closing);
    await settle();
    const out = frames(socket);
    expect(out).toHaveLength(1);
    expect(closeOf(out[0]!).code).toBe(code);
    expect(counters[Counter.ProtocolErrors]).toBe(1);
    expect(socket.writableEnded).toBe(true);
    // Nothing the peer sends afterwards is read.
    const seen = events.length;
    socket.receive(client(Opcode.Text, 'ignored'));
    socket.receive(client(Opcode.Ping, 'ignored'));
    await settle();
    expect(events.slice(seen)).toEqual([]);
    expect(events.filter((e) => e[1] === 'message' || e[1] === 'ping').map((e) => e[2])).not.toContain('ignored');
    expect(frames(socket)).toHaveLength(1);
    return { socket, counters, events };
  };

  it('an unmasked frame: 1002', async () => {
    await failsWith(encodeFrame(Opcode.Text, Buffer.from('bare')), 1002);
  });

  it('a reserved opcode: 1002', async () => {
    await failsWith(encodeFrame(0x3 as Opcode, Buffer.alloc(0), { maskKeys: keys }), 1002);
  });

  it('RSV1 without permessage-deflate: 1002', async () => {
    await failsWith(encodeFrame(Opcode.Text, Buffer.from('x'), { rsv1: true, maskKeys: keys }), 1002);
  });

  it('text that is not UTF-8: 1007', async () => {
    await failsWith(client(Opcode.Text, Buffer.from([0xc3, 0x28])), 1007);
  });

  it('a message over maxPayloadLength: 1009', async () => {
    await failsWith(client(Opcode.Binary, Buffer.alloc(101)), 1009, { maxPayloadLength: 100 });
  });

  it('an invalid close code from the peer: 1002, counted as exchanged once the socket closes', async () => {
    const { socket, counters, events } = await failsWith(client(Opcode.Close, Buffer.from([0x03, 0xed])), 1002); // 1005
    socket.destroy();
    await settle(1);
    expect(events.slice(1)).toEqual([['a', 'close', 1006, '']]);
    expect(counters[Counter.Closes1002]).toBe(1);
  });

  it('frames before the bad one are still delivered', async () => {
    const { events } = await failsWith(Buffer.concat([client(Opcode.Text, 'fine'), encodeFrame(Opcode.Text, Buffer.from('bare'))]), 1002);
    expect(events.slice(1, 2)).toEqual([['a', 'message', 'fine', false]]);
  });
});

describe('Connection: app handlers that throw', () => {
  it('a message handler that throws closes only that connection, with 1011', async () => {
    const { app, events } = recordingApp({
      message(ws, data) {
        if (data.toString() === 'boom') throw new Error('handler bug');
        ws.send(data.toString());
      },
    });
    const w = world({ app });
    const a = connect(w, 'a');
    const b = connect(w, 'b');
    a.socket.receive(client(Opcode.Text, 'boom'));
    b.socket.receive(client(Opcode.Text, 'still here'));
    await settle();
    expect(summary(a.socket)).toEqual(['close 1011 internal error']);
    expect(a.ws.readyState).toBe(ReadyState.Closing);
    expect(b.ws.readyState).toBe(ReadyState.Open);
    expect(summary(b.socket)).toEqual(['text still here']);
    expect(w.logger.records.filter((r) => r.level === 'error')).toHaveLength(1);
    // Later messages of the failed connection are not handed to the app.
    a.socket.receive(client(Opcode.Text, 'after'));
    expect(events.filter((e) => e[0] === 'a' && e[1] === 'message').map((e) => e[2])).toEqual(['boom']);
  });

  it('an open handler that throws closes with 1011 and the upgrade’s bytes are not read', async () => {
    const { app, events } = recordingApp({
      open: () => {
        throw new Error('open bug');
      },
    });
    const w = world({ app });
    const { socket } = connect(w, 'a', { head: client(Opcode.Text, 'early') });
    await settle();
    expect(summary(socket)).toEqual(['close 1011 internal error']);
    expect(events).toEqual([['a', 'open']]);
  });

  it('ping and pong handlers that throw close with 1011 too (the pong reply is already out)', async () => {
    for (const kind of ['ping', 'pong'] as const) {
      const { app } = recordingApp({
        [kind]: () => {
          throw new Error(`${kind} bug`);
        },
      });
      const { socket } = setup({ app });
      socket.receive(client(kind === 'ping' ? Opcode.Ping : Opcode.Pong, 'x'));
      await settle();
      expect(summary(socket)).toEqual(kind === 'ping' ? ['pong x', 'close 1011 internal error'] : ['close 1011 internal error']);
    }
  });
});

describe('Connection: topics', () => {
  it('subscribes and unsubscribes through the registry once per topic', () => {
    const { ws, topics } = setup();
    ws.subscribe('news');
    ws.subscribe('news');
    ws.subscribe('sport');
    expect(ws.isSubscribed('news')).toBe(true);
    expect(ws.isSubscribed('weather')).toBe(false);
    expect(ws.topics).toEqual(['news', 'sport']);
    ws.unsubscribe('news');
    ws.unsubscribe('news');
    ws.unsubscribe('never');
    expect(ws.isSubscribed('news')).toBe(false);
    expect(ws.topics).toEqual(['sport']);
    expect(topics.calls).toEqual(['subscribe a news', 'subscribe a sport', 'unsubscribe a news']);
  });

  it('topics is a copy: changing it changes nothing', () => {
    const { ws } = setup();
    ws.subscribe('t');
    (ws.topics as string[]).push('forged');
    expect(ws.topics).toEqual(['t']);
  });

  it('leaves every topic when the socket closes, and subscribes to nothing afterwards', async () => {
    const { ws, socket, topics } = setup();
    ws.subscribe('one');
    ws.subscribe('two');
    socket.destroy();
    await settle(1);
    expect(topics.calls).toEqual(['subscribe a one', 'subscribe a two', 'unsubscribe a one', 'unsubscribe a two']);
    expect(ws.topics).toEqual([]);
    ws.subscribe('three');
    ws.unsubscribe('one');
    expect(topics.calls).toHaveLength(4);
  });

  it('may subscribe while closing (the registry hears of it and the leave on close)', async () => {
    const { ws, socket, topics } = setup();
    ws.close();
    ws.subscribe('late');
    socket.destroy();
    await settle(1);
    expect(topics.calls).toEqual(['subscribe a late', 'unsubscribe a late']);
  });

  it('publish() goes to the registry with this connection as the one to skip', () => {
    const { ws, topics } = setup();
    ws.publish('room', 'hi', { priority: 'low' });
    expect(topics.publishes).toEqual([{ topic: 'room', data: 'hi', options: { priority: 'low' }, except: ws }]);
  });
});

describe('Connection: prepared frames (kSendPrepared, a broadcast)', () => {
  const prepared = (text: string): PreparedMessage => PreparedMessage.of(Opcode.Text, Buffer.from(text), null);
  const binary = (size: number): PreparedMessage => PreparedMessage.of(Opcode.Binary, Buffer.alloc(size), null);

  it('writes the plain frame as is, in order with other sends, and releases it once written', async () => {
    const { ws, socket, counters } = setup();
    const release = vi.fn();
    ws.send('before');
    expect(ws[kSendPrepared](prepared('broadcast'), 'normal', release)).toBe('written');
    ws.send('after');
    expect(release).not.toHaveBeenCalled();
    await settle();
    expect(summary(socket)).toEqual(['text before', 'text broadcast', 'text after']);
    expect(release).toHaveBeenCalledTimes(1);
    expect(counters[Counter.MessagesOut]).toBe(3);
  });

  it('releases only after the kernel took the frame, not when it was handed over', async () => {
    const { ws, socket } = setup();
    const release = vi.fn();
    socket.stall();
    ws[kSendPrepared](binary(5000), 'normal', release);
    await settle();
    expect(socket.writes).toHaveLength(1);
    expect(release).not.toHaveBeenCalled();
    socket.unstall();
    await settle();
    expect(release).toHaveBeenCalledTimes(1);
  });

  it('sends each peer the message compressed at its own window, and the plain frame to a peer without deflate', async () => {
    const message = 'shared '.repeat(40);
    const broadcast = PreparedMessage.of(Opcode.Text, Buffer.from(message), { level: 1, memLevel: 8 });
    const w = world();
    const wide = connect(w, 'a', { compression: deflate() });
    const narrow = connect(w, 'b', { compression: deflate({ window: 9 }) });
    const kept = connect(w, 'k', { compression: deflate({ noContext: false }) });
    const none = connect(w, 'c');
    for (const { ws } of [wide, narrow, kept, none]) ws[kSendPrepared](broadcast, 'normal', null);
    await settle();
    expect(wide.socket.output).toEqual(encodeFrame(Opcode.Text, deflateMessageShared(Buffer.from(message), 15), { rsv1: true }));
    expect(narrow.socket.output).toEqual(encodeFrame(Opcode.Text, deflateMessageShared(Buffer.from(message), 9), { rsv1: true }));
    // The same bytes, made once: a connection that keeps context takes the shared frame too.
    expect(kept.socket.output).toEqual(wide.socket.output);
    for (const { socket } of [wide, narrow, kept]) expect(inflate(frames(socket)[0]!)).toBe(message);
    expect(none.socket.output).toEqual(broadcast.plain);
  });

  it.each([true, false])(
    'keeps a context-takeover stream decodable around shared frames (zlib contexts on the thread: %s)',
    async (onThread) => {
      // The peer inflates with context kept (no server_no_context_takeover), as a browser does.
      const peer = new PerMessageDeflate('client', { ...PARAMS, serverNoContextTakeover: false }, { maxMessageSize: 1 << 22, onThread: true });
      const { ws, socket } = setup({ compression: deflate({ noContext: false, onThread }) });
      const own = (i: number) => `{"type":"own","seq":${i},"body":"${'context takeover '.repeat(20)}"}`;
      const shared = (i: number) => `{"type":"broadcast","seq":${i},"body":"${'context takeover '.repeat(20)}"}`;
      const sent: string[] = [];
      for (let i = 0; i < 6; i++) {
        ws.send(own(i));
        sent.push(own(i));
        if (i % 2 === 0) {
          ws[kSendPrepared](PreparedMessage.of(Opcode.Text, Buffer.from(shared(i)), { level: 1, memLevel: 8 }), 'normal', null);
          sent.push(shared(i));
        }
        ws.send(own(i + 100));
        sent.push(own(i + 100));
        await settle();
      }
      // On zlib's pool the last compression may still be running.
      for (let turn = 0; turn < 200 && frames(socket).length < sent.length; turn++) await new Promise((resolve) => setTimeout(resolve, 5));
      const got = frames(socket).map((f) => {
        expect(f.rsv1).toBe(true);
        return peer.inflateFrame(f.payload, true).toString();
      });
      expect(got).toEqual(sent);
      peer.close();
    },
  );

  describe('release runs exactly once on every path', () => {
    const once = async (release: ReturnType<typeof vi.fn>) => {
      await settle();
      expect(release).toHaveBeenCalledTimes(1);
    };

    it('not open: at once, and the frame is dropped', async () => {
      const { ws, socket } = setup();
      ws.close();
      const release = vi.fn();
      expect(ws[kSendPrepared](prepared('x'), 'normal', release)).toBe('dropped');
      expect(release).toHaveBeenCalledTimes(1);
      await once(release);
      expect(summary(socket)).toEqual(['close 1000']);
    });

    it('over the limit (closing the slow client): at once', async () => {
      const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 } });
      socket.stall();
      ws.send(Buffer.alloc(1500));
      const release = vi.fn();
      expect(ws[kSendPrepared](binary(2000), 'normal', release)).toBe('dropped');
      expect(release).toHaveBeenCalledTimes(1);
      socket.unstall();
      await once(release);
    });

    it('queued, then written', async () => {
      const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
      socket.stall();
      ws.send(Buffer.alloc(200));
      const release = vi.fn();
      expect(ws[kSendPrepared](prepared('queued'), 'normal', release)).toBe('buffered');
      await settle();
      expect(release).not.toHaveBeenCalled();
      socket.unstall();
      await once(release);
      expect(summary(socket)).toEqual(['binary 200', 'text queued']);
    });

    it('queued low, then dropped to make room for a normal message', async () => {
      const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: dropForSlowClients });
      socket.stall();
      ws.send(Buffer.alloc(1500));
      const release = vi.fn();
      expect(ws[kSendPrepared](binary(900), 'low', release)).toBe('buffered');
      expect(release).not.toHaveBeenCalled();
      expect(ws.send(Buffer.alloc(1000))).toBe('buffered');
      expect(release).toHaveBeenCalledTimes(1);
      socket.unstall();
      await once(release);
      expect(summary(socket)).toEqual(['binary 1500', 'binary 1000']);
    });

    it('queued, then dropped by the peer’s close', async () => {
      const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
      socket.stall();
      ws.send(Buffer.alloc(200));
      const release = vi.fn();
      ws[kSendPrepared](prepared('queued'), 'normal', release);
      socket.receive(clientClose(1000));
      expect(release).toHaveBeenCalledTimes(1);
      socket.unstall();
      await once(release);
    });

    it('handed to the socket’s writer, then the socket closed before the flush', async () => {
      const { ws, socket } = setup();
      const release = vi.fn();
      ws[kSendPrepared](prepared('x'), 'normal', release);
      socket.destroy();
      await once(release);
      expect(socket.writes).toEqual([]);
    });

    it('in the kernel, then the socket closed', async () => {
      const { ws, socket } = setup();
      const release = vi.fn();
      socket.stall();
      ws[kSendPrepared](binary(5000), 'normal', release);
      await settle();
      expect(release).not.toHaveBeenCalled();
      socket.destroy();
      await once(release);
    });

    it('queued behind a slow socket, then the socket closed', async () => {
      const { ws, socket } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
      socket.stall();
      const releases = [vi.fn(), vi.fn(), vi.fn()];
      for (const release of releases) ws[kSendPrepared](binary(300), 'normal', release);
      await settle(); // the first is in the kernel, the others queued
      socket.destroy();
      await settle();
      for (const release of releases) expect(release).toHaveBeenCalledTimes(1);
    });
  });
});

describe('Connection: permessage-deflate on sends', () => {
  it('compresses messages from the threshold up, unless the sender says not to', async () => {
    const { ws, socket, counters } = setup({ compression: deflate({ threshold: 100 }) });
    const long = 'long message '.repeat(20);
    ws.send('short');
    ws.send(long);
    ws.send(long, { compress: false });
    await settle();
    const out = frames(socket);
    expect(out.map((f) => f.rsv1)).toEqual([false, true, false]);
    expect(inflate(out[1]!)).toBe(long);
    expect(out[2]!.payload.toString()).toBe(long);
    expect(counters[Counter.DeflateBytesIn]).toBe(long.length);
    expect(counters[Counter.MessagesOut]).toBe(3);
  });

  it('messages sent while one compresses off-thread keep their order and count as written, not buffered', async () => {
    const compression = deflate({ noContext: false, threshold: 100 });
    expect(compression.compressSync).toBeNull();
    const { ws, socket, counters } = setup({ compression });
    const long = 'x'.repeat(300);
    expect(ws.send(long)).toBe('written');
    expect(ws.send('small')).toBe('written');
    expect(ws.send(long)).toBe('written');
    expect(counters[Counter.BackpressureEvents]).toBe(0);
    await vi.waitFor(() => expect(frames(socket)).toHaveLength(3));
    expect(frames(socket).map((f) => f.rsv1)).toEqual([true, false, true]);
    expect(frames(socket)[1]!.payload.toString()).toBe('small');
  });

  it('our close frame follows a message being compressed', async () => {
    const { ws, socket } = setup({ compression: deflate({ noContext: false }) });
    ws.send(Buffer.alloc(SYNC_COMPRESS_LIMIT, 1));
    ws.close(1000, 'after it');
    await vi.waitFor(() => expect(frames(socket)).toHaveLength(2));
    expect(summary(socket)).toEqual(['binary+rsv1 ' + frames(socket)[0]!.payload.length, 'close 1000 after it']);
  });

  it('the peer’s close while a message compresses: that message goes out, then the echo; what is queued behind it is dropped', async () => {
    let finish: ((error: Error | null, data?: Buffer) => void) | null = null;
    const slow: MessageCompression = { ...fakeCompression(), compress: (_data, callback) => void (finish = callback) };
    const { ws, socket } = setup({ compression: slow });
    ws.send('compressing');
    expect(ws.send('queued', { compress: false })).toBe('written');
    socket.receive(clientClose(1001));
    await settle();
    expect(socket.writes).toEqual([]);
    finish!(null, Buffer.from('<deflated>'));
    await settle();
    expect(summary(socket)).toEqual(['text+rsv1 <deflated>', 'close 1001']);
    expect(socket.writableEnded).toBe(true);
  });

  it('a message whose compression ends after our close frame went out (a failure) is discarded', async () => {
    let finish: ((error: Error | null, data?: Buffer) => void) | null = null;
    const slow: MessageCompression = { ...fakeCompression(), compress: (_data, callback) => void (finish = callback) };
    const { ws, socket } = setup({ compression: slow });
    ws.send('compressing');
    socket.receive(encodeFrame(Opcode.Text, Buffer.from('bare'))); // unmasked: 1002
    finish!(null, Buffer.from('<deflated>')); // in the same turn, before the close frame is written
    await settle();
    expect(summary(socket)).toEqual(['close 1002 client frame is not masked']);
  });

  it('a compression failure closes the connection with 1011', async () => {
    const failing: MessageCompression = {
      ...fakeCompression(),
      compress: (_data, callback) => setImmediate(() => callback(new Error('zlib broke'))),
    };
    const { ws, socket, logger } = setup({ compression: failing });
    ws.send('anything');
    await settle();
    expect(summary(socket)).toEqual(['close 1011 compression failed']);
    expect(logger.records.some((r) => r.level === 'error')).toBe(true);
  });

  it('closes the codec when the socket closes', async () => {
    const compression = { ...fakeCompression(), close: vi.fn() };
    const { socket } = setup({ compression });
    socket.destroy();
    await settle(1);
    expect(compression.close).toHaveBeenCalledTimes(1);
  });
});

/** A MessageCompression whose parts a test replaces: compresses on the pool only, never inflates. */
function fakeCompression(): MessageCompression {
  return {
    inflater: { synchronous: false, decompress: () => undefined },
    threshold: 0,
    compressSync: null,
    syncLimit: SYNC_COMPRESS_LIMIT,
    compress: (data, callback) => setImmediate(() => callback(null, data)),
    compressFragment: null,
    window: 15,
    afterSharedFrame: () => undefined,
    close: () => undefined,
  };
}

// ---- messages in fragments, pongs, drops, stalls -----------------------------------------------

/** Frames as [opcode name, FIN, RSV1, payload text or length]. */
const wire = (socket: FakeSocket): (string | boolean | number)[][] =>
  frames(socket).map((f) => [OP_NAMES[f.opcode], f.fin, f.rsv1, f.opcode === Opcode.Binary ? f.payload.length : f.payload.toString()]);

describe('Connection: sendFragment (a message in pieces)', () => {
  it('frames the pieces as one message; other messages wait for its last piece, control frames do not', async () => {
    const { ws, socket, events } = setup();
    expect(ws.sendFragment('a', { fin: false })).toBe('written');
    expect(ws.send('other')).toBe('buffered');
    ws[kSendPrepared](PreparedMessage.of(Opcode.Text, Buffer.from('broadcast'), null), 'high', null);
    ws.ping('p');
    expect(ws.sendFragment('b', { fin: false })).toBe('written');
    await settle();
    expect(wire(socket)).toEqual([
      ['text', false, false, 'a'],
      ['ping', true, false, 'p'],
      ['cont', false, false, 'b'],
    ]);
    expect(ws.sendFragment('c', { fin: true })).toBe('written');
    // What waited goes out once the last piece is written; a send meanwhile keeps its place.
    expect(ws.send('after')).toBe('buffered');
    await settle();
    expect(wire(socket).slice(3)).toEqual([
      ['cont', true, false, 'c'],
      ['text', true, false, 'broadcast'],
      ['text', true, false, 'other'],
      ['text', true, false, 'after'],
    ]);
    // 'buffered' promised drain: it comes once what waited is out.
    expect(events.filter((e) => e[1] === 'drain')).toHaveLength(1);
  });

  it('sends binary pieces as binary, and a one-piece message as a plain message', async () => {
    const { ws, socket } = setup();
    ws.sendFragment(Buffer.from([1, 2]), { fin: false });
    ws.sendFragment(Buffer.from([3]), { fin: true });
    ws.sendFragment('whole', { fin: true });
    ws.sendFragment('as binary', { fin: true, binary: true });
    await settle();
    expect(wire(socket)).toEqual([
      ['binary', false, false, 2],
      ['cont', true, false, '\u0003'],
      ['text', true, false, 'whole'],
      ['binary', true, false, 9],
    ]);
  });

  it.each([
    ['without context', true],
    ['with context kept', false],
  ] as const)('compresses the pieces %s: RSV1 on the first frame only, and the peer inflates them', async (_, noContext) => {
    const compression = deflate({ noContext, onThread: true });
    const { ws, socket } = setup({ compression });
    const peer = new PerMessageDeflate('client', { ...PARAMS, serverNoContextTakeover: noContext }, { maxMessageSize: 1 << 22, onThread: true });
    const piece = (i: number) => `{"token":${i},"text":"${'streamed '.repeat(10)}"}`;
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5; i++) ws.sendFragment(piece(i), { fin: i === 4 });
      ws.send(piece(99));
    }
    await settle();
    const got = frames(socket);
    expect(got.map((f) => [OP_NAMES[f.opcode], f.fin, f.rsv1])).toEqual(
      Array.from({ length: 2 }, () => [['text', false, true], ['cont', false, false], ['cont', false, false], ['cont', false, false], ['cont', true, false], ['text', true, true]]).flat(),
    );
    const messages: string[] = [];
    let parts: Buffer[] = [];
    for (const f of got) {
      parts.push(peer.inflateFrame(f.payload, f.fin));
      if (f.fin) {
        messages.push(Buffer.concat(parts).toString());
        parts = [];
      }
    }
    const stream = [0, 1, 2, 3, 4].map(piece).join('');
    expect(messages).toEqual([stream, piece(99), stream, piece(99)]);
    peer.close();
  });

  it('goes uncompressed when told, or when its first piece is below the threshold', async () => {
    const { ws, socket } = setup({ compression: deflate({ threshold: 100, onThread: true }) });
    ws.sendFragment('x'.repeat(200), { fin: false, compress: false });
    ws.sendFragment('y'.repeat(200), { fin: true });
    ws.sendFragment('small', { fin: false });
    ws.sendFragment('z'.repeat(200), { fin: true });
    await settle();
    expect(frames(socket).map((f) => f.rsv1)).toEqual([false, false, false, false]);
  });

  it('waits as a whole behind queued messages when the socket is slow, then goes out in order', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(1500, 0x41));
    expect(ws.send('queued')).toBe('buffered');
    expect(ws.sendFragment('s1', { fin: false })).toBe('buffered');
    expect(ws.sendFragment('s2', { fin: false })).toBe('buffered');
    expect(ws.send('behind the stream')).toBe('buffered');
    expect(ws.sendFragment('s3', { fin: true })).toBe('buffered');
    expect(ws.bufferedAmount).toBe(1504 + 6 + 6 + 17);
    socket.unstall();
    await settle();
    expect(wire(socket)).toEqual([
      ['binary', true, false, 1500],
      ['text', true, false, 'queued'],
      ['text', false, false, 's1'],
      ['cont', false, false, 's2'],
      ['cont', true, false, 's3'],
      ['text', true, false, 'behind the stream'],
    ]);
    expect(ws.bufferedAmount).toBe(0);
  });

  it('a message whose first piece the policy drops loses its later pieces too, and the app hears of each', async () => {
    const { ws, socket, events } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: dropForSlowClients });
    socket.stall();
    ws.send(Buffer.alloc(2500));
    expect(ws.sendFragment(Buffer.alloc(600), { fin: false, priority: 'low' })).toBe('dropped');
    expect(ws.sendFragment(Buffer.alloc(10), { fin: true })).toBe('dropped');
    // The next call starts a new message.
    expect(ws.sendFragment('next', { fin: true })).toBe('buffered');
    socket.unstall();
    await settle();
    expect(wire(socket)).toEqual([
      ['binary', true, false, 2500],
      ['text', true, false, 'next'],
    ]);
    expect(events.filter((e) => e[1] === 'dropped')).toEqual([
      ['a', 'dropped', 600, true],
      ['a', 'dropped', 10, true],
    ]);
  });

  it('never drops a piece of a message on the wire: past the limit the connection is closed (1008)', async () => {
    const { ws, socket, events } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: dropForSlowClients });
    expect(ws.sendFragment(Buffer.alloc(2000), { fin: false })).toBe('written');
    socket.stall();
    await settle();
    expect(ws.sendFragment(Buffer.alloc(500), { fin: false })).toBe('buffered');
    expect(ws.sendFragment(Buffer.alloc(1000), { fin: false })).toBe('dropped');
    socket.unstall();
    await settle();
    expect(summary(socket).at(-1)).toBe('close 1008 slow client');
    expect(events.filter((e) => e[1] === 'dropped')).toEqual([]);
  });

  it('close() while a message is unfinished: the close frame comes after its pieces so far, what waits goes', async () => {
    const { ws, socket } = setup();
    ws.sendFragment('part', { fin: false });
    ws.send('never');
    ws.close(1000, 'bye');
    expect(ws.sendFragment('late', { fin: true })).toBe('dropped');
    await settle();
    expect(wire(socket).map((f) => f.slice(0, 2))).toEqual([
      ['text', false],
      ['close', true],
    ]);
  });

  it('close() after the last piece waits for the pieces still queued, then closes', async () => {
    const { ws, socket } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(1500));
    ws.sendFragment('a', { fin: false });
    ws.sendFragment('b', { fin: true });
    ws.close(1000);
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 1500', 'text a', 'cont b', 'close 1000']);
  });
});

describe('Connection: pongs', () => {
  it('answers a ping by default, and not with autoPong off, where the app answers with ws.pong', async () => {
    const auto = setup();
    auto.socket.receive(client(Opcode.Ping, 'hi'));
    const manual = setup({ autoPong: false, app: recordingApp({ ping: (ws, data) => data.toString() === 'answer' && ws.pong('answered') }).app });
    manual.socket.receive(client(Opcode.Ping, 'ignore me'));
    manual.socket.receive(client(Opcode.Ping, 'answer'));
    await settle();
    expect(summary(auto.socket)).toEqual(['pong hi']);
    expect(summary(manual.socket)).toEqual(['pong answered']);
  });

  it('sends an unsolicited pong; refuses one over 125 bytes', async () => {
    const { ws, socket } = setup();
    ws.pong();
    ws.pong(Buffer.from('beat'));
    expect(() => ws.pong('x'.repeat(126))).toThrow(/at most 125 bytes/);
    await settle();
    expect(summary(socket)).toEqual(['pong ', 'pong beat']);
  });
});

describe('Connection: dropped', () => {
  it('tells the app of each message the policy drops, with a copy of its bytes', async () => {
    const { ws, socket, events } = setup({ limits: { highWaterMark: 1000, maxBackpressure: 3000 }, slowClient: dropForSlowClients });
    socket.stall();
    ws.send(Buffer.alloc(2500));
    const bytes = Buffer.from('low priority');
    expect(ws.send(bytes, { priority: 'low', binary: false })).toBe('buffered');
    expect(ws.send(Buffer.alloc(2000), { priority: 'low' })).toBe('dropped');
    bytes.fill(0x2e);
    // A normal message needs room: the queued low one goes.
    expect(ws.send(Buffer.alloc(490))).toBe('buffered');
    ws[kSendPrepared](PreparedMessage.of(Opcode.Text, Buffer.from('broadcast'), null), 'low', null);
    expect(events.filter((e) => e[1] === 'dropped')).toEqual([
      ['a', 'dropped', 2000, true],
      ['a', 'dropped', 'low priority', false],
      ['a', 'dropped', 'broadcast', false],
    ]);
  });

  it('does not call it for what a close discards', async () => {
    const { ws, socket, events } = setup({ limits: { highWaterMark: 100, maxBackpressure: 100_000 } });
    socket.stall();
    ws.send(Buffer.alloc(200));
    ws.send('queued');
    socket.receive(clientClose(1000));
    socket.unstall();
    await settle();
    expect(events.filter((e) => e[1] === 'dropped')).toEqual([]);
  });
});

describe('Connection: slowClientTimeout ([kStalled])', () => {
  const LIMITS = { highWaterMark: 1000, maxBackpressure: 100_000 };
  const stall = (options: WorldOptions) => {
    const world = setup({ limits: LIMITS, lowWaterMark: 100, ...options });
    world.socket.stall();
    world.ws.send(Buffer.alloc(1500));
    world.ws.send('waits');
    return world;
  };

  it('marks when a connection became backlogged, and clears it once drained', async () => {
    const { ws, socket } = setup({ limits: LIMITS, lowWaterMark: 100 });
    expect(ws[kBackloggedSince]).toBeNull();
    socket.stall();
    const before = Date.now();
    ws.send(Buffer.alloc(1500));
    expect(ws.send('x')).toBe('buffered');
    expect(ws[kBackloggedSince]).toBeGreaterThanOrEqual(before);
    socket.unstall();
    await settle();
    expect(ws[kBackloggedSince]).toBeNull();
  });

  it("'close': closes with 1008", async () => {
    const { ws, socket } = stall({ slowClient: closeSlowClients });
    ws[kStalled]();
    socket.unstall();
    await settle();
    expect(summary(socket).at(-1)).toBe('close 1008 slow client');
  });

  it("'drop': drops what waits, tells the app, and watches again from now", async () => {
    const { ws, socket, events, counters } = stall({ slowClient: dropForSlowClients });
    const since = ws[kBackloggedSince]!;
    await new Promise((resolve) => setTimeout(resolve, 5));
    ws[kStalled]();
    expect(events.filter((e) => e[1] === 'dropped')).toEqual([['a', 'dropped', 'waits', false]]);
    expect(counters[Counter.Drops]).toBe(1);
    expect(ws[kBackloggedSince]).toBeGreaterThan(since);
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 1500']);
    expect(ws.readyState).toBe(ReadyState.Open);
  });

  it("'custom': asks the app with cause 'timeout'; 'queue' waits on", async () => {
    const calls: unknown[][] = [];
    const app = recordingApp().app;
    app.slowClient = (_ws, buffered, priority, cause) => {
      calls.push([buffered, priority, cause]);
      return 'queue';
    };
    const { ws, socket } = setup({ app, limits: LIMITS, lowWaterMark: 100, slowClient: appSlowClientPolicy(app, recordingLogger()) });
    socket.stall();
    ws.send(Buffer.alloc(1500));
    ws.send('waits');
    ws[kStalled]();
    expect(calls).toEqual([[1504 + 5, 'normal', 'timeout']]);
    socket.unstall();
    await settle();
    expect(summary(socket)).toEqual(['binary 1500', 'text waits']);
  });
});
