/**
 * A server connection after the 101: the `ws` object the app's handlers receive, and the
 * socket's read and write lifecycle behind it. What it decides elsewhere: admission and the
 * slow-client policy (send-admission.ts), the closing handshake (close-handshake.ts), the idle
 * timeout (idle-sweep.ts), compress-then-frame (shared/message-encoder.ts), the per-turn
 * write batching (runtime/frame-flush.ts).
 *
 * Only the public API (ServerWebSocket) is reachable on the object. What other worker modules
 * call is keyed by the symbols below, which the package does not export; the reader, encoder,
 * closing handshake and flush call back through static tables, so a connection carries no
 * closures of its own.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { App, FragmentOptions, MessageData, Priority, PublishOptions, SendOptions, SendStatus, ServerWebSocket, Shard, SubscribeOptions } from '../shared/app.ts';
import { ReadyState, messageBytes, sendsBinary } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { ServerConfig } from '../shared/config.ts';
import type { ProtocolError } from '../shared/errors.ts';
import type { ByteArena } from '../shared/frame-writer.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { MessageEncoder } from '../shared/message-encoder.ts';
import type { EncoderOps } from '../shared/message-encoder.ts';
import { MessageReader } from '../shared/message-reader.ts';
import type { MessageEvents } from '../shared/message-reader.ts';
import { MAX_CONTROL_PAYLOAD, Opcode } from '../shared/opcodes.ts';
import { Counter, closeCounter, recordDeflate, recordSize } from '../shared/worker-counters.ts';
import { FrameSink } from '../runtime/frame-flush.ts';
import type { FrameTransport } from '../runtime/frame-transport.ts';
import type { FlushHook, FlushScheduler } from '../runtime/frame-flush.ts';
import { CloseHandshake } from './close-handshake.ts';
import type { CloseOps, CloseSettings } from './close-handshake.ts';
import type { ReadBuffer } from './socket-rehome.ts';
import type { PreparedMessage } from '../shared/prepared-message.ts';
import { OutboundQueue } from './outbound-queue.ts';
import type { QueuedData, QueuedFrames, QueuedMessage } from './outbound-queue.ts';
import { OutgoingStream } from './outgoing-stream.ts';
import type { Fragment } from './outgoing-stream.ts';
import type { ConnectionDirectory } from './connection-directory.ts';
import { admit } from './send-admission.ts';
import type { Admission, OverLimit, SendLimits, SlowClientPolicy } from './send-admission.ts';

/** What every connection of a worker shares. */
export interface ConnectionContext {
  /** Replaced in place by a reload: every connection of the route switches handlers at once. */
  app: App<unknown>;
  readonly shard: Shard;
  readonly logger: Logger;
  readonly arena: ByteArena;
  readonly scheduler: FlushScheduler;
  /** This worker's counter slot. */
  readonly counters: Float64Array;
  readonly maxPayloadLength: number;
  /** What the reader enforces beside maxPayloadLength (readingLimits). */
  readonly reading: ReadingLimits;
  /** Answer pings with a pong (the autoPong option); else the app's ping handler does. */
  readonly autoPong: boolean;
  readonly limits: SendLimits;
  /** `drain` fires once buffered data falls to this many bytes. */
  readonly lowWaterMark: number;
  /** Replaced with `app` by a reload (the custom policy asks the app). */
  slowClient: SlowClientPolicy;
  readonly close: CloseSettings;
  readonly topics: TopicMembership;
  /** Ids and tags: where `shard.send(id)` and `sendTo(key)` find connections. */
  readonly directory: ConnectionDirectory<Connection>;
  /** The idle sweep's tick, stamped on every read (idle-sweep.ts). */
  readonly idle: { readonly tick: number };
  /**
   * Connections with messages queued behind a slow socket, or a 'buffered' send not yet drained
   * (the only ones whose backlog counts for load, and that slowClientTimeout watches).
   */
  readonly backlogged: Set<Connection>;
  readonly closed: (connection: Connection) => void;
}

/** The reader's limits beside maxPayloadLength, as the server options of those names set them. */
export interface ReadingLimits {
  readonly maxFrameSize: number;
  readonly maxFragments: number;
  readonly validateUtf8: boolean;
}

/** The options' 0 ("no limit of its own") is Infinity to the reader. */
export const readingLimits = (config: Pick<ServerConfig, 'maxFrameSize' | 'maxFragments' | 'skipUtf8Validation'>): ReadingLimits => ({
  maxFrameSize: config.maxFrameSize || Infinity,
  maxFragments: config.maxFragments || Infinity,
  validateUtf8: !config.skipUtf8Validation,
});

/** The topic registry as a connection sees it. */
export interface TopicMembership {
  /** Returns the topic's subscriber count after the change. */
  subscribe(connection: Connection, topic: string, since?: string): number;
  /** Returns the topic's subscriber count after the change, or -1 when it was not subscribed. */
  unsubscribe(connection: Connection, topic: string): number;
  publish(topic: string, data: MessageData, options: PublishOptions | undefined, except: Connection | null): Promise<string> | undefined;
}

/** What the upgrade settled for a connection. */
export interface ConnectionInit {
  readonly data: unknown;
  readonly remoteAddress: string;
  readonly protocol: string;
  readonly extensions: string;
  readonly compression: MessageCompression | null;
}

/** Delivers the bytes that arrived with the upgrade request, after `open`. */
export const kStart: unique symbol = Symbol('shardws.start');
/** Sends frames built once for many connections (a broadcast). */
export const kSendPrepared: unique symbol = Symbol('shardws.sendPrepared');
/** The idle sweep's tick at this connection's last read. */
export const kLastActive: unique symbol = Symbol('shardws.lastActive');
/** The `onread` every plain TCP connection of the worker reads through (socket-rehome.ts). */
export const kReads: unique symbol = Symbol('shardws.reads');
/** Date.now() when the connection last became backlogged (null: it is not), for slowClientTimeout. */
export const kBackloggedSince: unique symbol = Symbol('shardws.backloggedSince');
/** It has been backlogged for slowClientTimeout: the slow-client policy decides (stall-watch.ts). */
export const kStalled: unique symbol = Symbol('shardws.stalled');
/** Stops (true) or resumes reading the socket: a proxy whose upstream is behind (proxy-link.ts). */
export const kHoldReading: unique symbol = Symbol('shardws.holdReading');
/** This connection's number on its worker: how a publish through a durable bridge names the connection it leaves out. */
export const kSerial: unique symbol = Symbol('shardws.serial');
/** The app this connection serves (its route's). */
export const kApp: unique symbol = Symbol('shardws.app');

/** Serials start at a random point, so that a restarted worker's do not meet its predecessor's. */
let nextSerial = Math.floor(Math.random() * 2 ** 31);

/**
 * The worker's one read buffer: every plain TCP connection reads into it (net's `onread`), so no
 * Buffer is allocated per read. A read is parsed before the next one lands; what outlives the
 * read (an incomplete frame, a message handed to the app) is copied (MessageReader's transient
 * pushes, `ownBytes`).
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** `data`, or a copy of it when it is a view of the read buffer (the app may keep what it gets). */
function ownBytes(data: Buffer): Buffer {
  if (data.buffer !== READ_BUFFER.buffer) return data;
  const copy = Buffer.allocUnsafe(data.length);
  copy.set(data);
  return copy;
}

const EMPTY = Buffer.alloc(0);

/** A copy of `bytes` the caller cannot change (MessageData: send takes what it keeps). */
function copy(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  out.set(bytes);
  return out;
}

/** Where a socket's listeners find their Connection. */
const kConnection = Symbol('shardws.connection');
type OwnedSocket = FrameTransport & { [kConnection]: Connection };

export class Connection implements ServerWebSocket<unknown> {
  readonly id: string;
  data: unknown;
  readonly remoteAddress: string;
  readonly protocol: string;
  readonly extensions: string;

  readonly #socket: FrameTransport;
  readonly #ctx: ConnectionContext;
  readonly #reader: MessageReader<Connection>;
  readonly #sink: FrameSink<Connection>;
  readonly #compression: MessageCompression | null;
  /** Present when permessage-deflate was negotiated. */
  readonly #encoder: MessageEncoder<Connection> | null;
  /** Created on the first message that has to wait: most connections never need one. */
  #queue: OutboundQueue | null = null;
  /** Created when closing begins. */
  #close: CloseHandshake<Connection> | null = null;
  #topics: Set<string> | null = null;
  #tags: Set<string> | null = null;
  /** `send` said 'buffered': the app hears `drain` once the backlog is written. */
  #needDrain = false;
  /** Releases of pooled frames handed to the sink and not yet confirmed written. */
  #inFlight: (() => void)[] | null = null;
  #lastActive: number;
  /** The message sendFragment is adding to, from its first fragment to its last. */
  #openStream: OutgoingStream | null = null;
  /** The message in fragments whose frames are on the wire, until its last frame is. */
  #writingStream: OutgoingStream | null = null;
  #backloggedSince: number | null = null;
  /** Reading stopped by the reader (an inflation behind) or by kHoldReading: either keeps it stopped. */
  #readerStopped = false;
  #held = false;
  readonly #serial = (nextSerial = (nextSerial + 1) & 0x7fffffff);

  /**
   * `socket` is either a plain TCP socket created with `Connection[kReads]` as its `onread`, or
   * a transport that emits 'data' (TLS, an HTTP/2 stream): `reads` says which.
   */
  constructor(socket: FrameTransport, ctx: ConnectionContext, init: ConnectionInit, reads: 'read-buffer' | 'data-events' = 'data-events') {
    this.#socket = socket;
    this.#ctx = ctx;
    this.id = ctx.directory.nextId();
    this.data = init.data;
    this.remoteAddress = init.remoteAddress;
    this.protocol = init.protocol;
    this.extensions = init.extensions;
    this.#compression = init.compression;
    this.#lastActive = ctx.idle.tick;
    // Frames that arrive with the peer's FIN are still read and answered (the closing handshake
    // ends our side), even when they wait behind an inflation.
    socket.allowHalfOpen = true;
    this.#sink = new FrameSink<Connection>(ctx.arena, null, ctx.scheduler, socket, Connection.#flushing, this);
    this.#encoder = init.compression === null ? null : new MessageEncoder<Connection>(this.#sink, init.compression, Connection.#encoderOps, this, ctx.counters);
    this.#reader = new MessageReader<Connection>(Connection.#readerEvents, this, {
      role: 'server',
      maxMessageSize: ctx.maxPayloadLength,
      inflater: init.compression?.inflater ?? null,
      maxFrameSize: ctx.reading.maxFrameSize,
      maxFragments: ctx.reading.maxFragments,
      validateUtf8: ctx.reading.validateUtf8,
    });
    (socket as OwnedSocket)[kConnection] = this;
    if (reads === 'data-events') socket.on('data', Connection.#onData);
    socket.on('end', Connection.#onEnd);
    socket.on('close', Connection.#onClose);
    socket.on('error', Connection.#onError);
    socket.on('drain', Connection.#onDrain);
    // Counted from construction, before the socket stops counting as a handshake: the primary
    // reads these counters from another thread and must never see the connection as neither.
    ctx.counters[Counter.Connections]!++;
    ctx.directory.add(this);
  }

  get readyState(): ReadyState {
    return this.#close === null ? ReadyState.Open : this.#close.state;
  }

  get shard(): Shard {
    return this.#ctx.shard;
  }

  get bufferedAmount(): number {
    return this.#sink.pendingBytes + (this.#queue?.bytes ?? 0) + (this.#writingStream?.pendingBytes ?? 0) + this.#socket.writableLength;
  }

  get topics(): readonly string[] {
    return this.#topics === null ? [] : [...this.#topics];
  }

  get tags(): readonly string[] {
    return this.#tags === null ? [] : [...this.#tags];
  }

  get [kLastActive](): number {
    return this.#lastActive;
  }

  get [kBackloggedSince](): number | null {
    return this.#backloggedSince;
  }

  [kHoldReading](held: boolean): void {
    this.#held = held;
    if (held) this.#socket.pause();
    else if (!this.#readerStopped) this.#socket.resume();
  }

  get [kSerial](): number {
    return this.#serial;
  }

  /** The app of this connection's route: its `stamp` and `recovery` handlers (durable bridge). */
  get [kApp](): App<unknown> {
    return this.#ctx.app;
  }

  /** Runs `open`, then parses what arrived with the upgrade request (`head`, then `pending`). */
  [kStart](head: Buffer, pending: readonly Buffer[] = []): void {
    const app = this.#ctx.app;
    if (app.open) {
      try {
        app.open(this);
      } catch (error) {
        this.#handlerThrew('open', error);
      }
    }
    for (const chunk of [head, ...pending]) {
      if (chunk.length > 0 && this.readyState !== ReadyState.Closed) this.#read(chunk, false);
    }
  }

  // ---- sending --------------------------------------------------------------------------

  send(data: MessageData, options?: SendOptions): SendStatus {
    if (this.readyState !== ReadyState.Open) return 'dropped';
    const payload = messageBytes(data);
    const binary = sendsBinary(data, options?.binary);
    const compress = this.#compression !== null && compressionWanted(this.#compression.threshold, payload.length, options?.compress);
    const admission = admit(this.#ctx.limits, this.bufferedAmount, this.#waiting, payload.length);
    // The common case writes at once, without a queue entry: per-message garbage is what an
    // echo server lives on. A payload over COPY_THRESHOLD goes to the socket as the caller's
    // buffer, as Node's socket.write takes it (MessageData says so): a copy of every large
    // message doubled the external memory per echo and with it V8's mark-compacts (W2 +40 %).
    if (admission === 'write' && !compress) {
      this.#frame(binary ? Opcode.Binary : Opcode.Text, payload);
      return 'written';
    }
    // Compressed on this thread now, the caller's bytes are read before send returns; anything
    // that waits (in the queue, or for zlib's pool) is copied first (MessageData).
    const readNow = admission === 'write' && this.#compression!.compressSync !== null && payload.length <= this.#compression!.syncLimit;
    const owned = typeof data === 'string' || readNow ? payload : copy(payload);
    const message: QueuedMessage = { kind: 'data', priority: options?.priority ?? 'normal', size: owned.length, payload: owned, binary, compress, release: null };
    return this.#admitted(admission, message);
  }

  sendFragment(data: MessageData, options: FragmentOptions): SendStatus {
    if (this.readyState !== ReadyState.Open) return 'dropped';
    const raw = messageBytes(data);
    const payload = typeof data === 'string' ? raw : copy(raw);
    const fragment = { data: payload, fin: options.fin };
    let stream = this.#openStream;
    if (stream === null) {
      const compression = this.#compression;
      const compress = compression !== null && compression.compressFragment !== null && compressionWanted(compression.threshold, payload.length, options.compress);
      stream = new OutgoingStream(sendsBinary(data, options.binary), compress, options.priority ?? 'normal');
      return this.#startStream(stream, fragment);
    }
    stream.accept(fragment.fin);
    if (fragment.fin) this.#openStream = null;
    if (stream.dropped) {
      this.#tellDropped(payload, stream.binary);
      this.#ctx.counters[Counter.Drops]!++;
      return 'dropped';
    }
    const ctx = this.#ctx;
    // Its frames are on the wire, nothing of it waits and the socket keeps up: out now (what
    // waited behind it follows once this write is done, #flushing).
    if (stream === this.#writingStream && !stream.hasPending && this.#sink.pendingBytes + this.#socket.writableLength < ctx.limits.highWaterMark) {
      this.#writeFragment(stream, fragment);
      return 'written';
    }
    const buffered = this.bufferedAmount;
    if (buffered > 0 && buffered + payload.length > ctx.limits.maxBackpressure) {
      const verdict = ctx.slowClient.overLimit(this.#overLimit(stream.priority, payload.length));
      if (verdict !== 'queue') {
        if (verdict === 'drop' && !stream.started) return this.#dropStream(stream, fragment);
        // A message on the wire cannot lose a piece: the peer would read the rest as another.
        ctx.logger.warn({ remote: this.remoteAddress, buffered }, 'closing slow client: backpressure limit reached in a fragmented message');
        this.#closing().fail(CloseCode.PolicyViolation, 'slow client');
        ctx.counters[Counter.Drops]!++;
        return 'dropped';
      }
    }
    stream.push(fragment);
    return this.#waited(this.bufferedAmount >= ctx.limits.highWaterMark);
  }

  /** The first fragment of a message: admitted as a message is, then written or queued in its place. */
  #startStream(stream: OutgoingStream, fragment: Fragment): SendStatus {
    const ctx = this.#ctx;
    if (!fragment.fin) this.#openStream = stream;
    stream.accept(fragment.fin);
    let admission = admit(ctx.limits, this.bufferedAmount, this.#waiting, fragment.data.length);
    if (admission === 'over-limit') {
      const verdict = ctx.slowClient.overLimit(this.#overLimit(stream.priority, fragment.data.length));
      if (verdict === 'close') {
        this.#failSlow();
        return this.#dropStream(stream, fragment);
      }
      if (verdict === 'drop') return this.#dropStream(stream, fragment);
      admission = this.#waiting || this.bufferedAmount >= ctx.limits.highWaterMark ? 'queue' : 'write';
    }
    if (admission === 'write') {
      this.#writingStream = stream;
      this.#writeFragment(stream, fragment);
      return 'written';
    }
    stream.push(fragment);
    (this.#queue ??= new OutboundQueue()).push({ kind: 'stream', priority: stream.priority, size: 0, stream, release: null });
    return this.#waited(this.bufferedAmount >= ctx.limits.highWaterMark);
  }

  /** Drops a message in fragments that has not started, with `fragment`, the one being sent. */
  #dropStream(stream: OutgoingStream, fragment: Fragment): SendStatus {
    const dropped = stream.drop();
    const ctx = this.#ctx;
    for (const waiting of dropped) this.#tellDropped(waiting.data, stream.binary);
    this.#tellDropped(fragment.data, stream.binary);
    ctx.counters[Counter.Drops]!++;
    return 'dropped';
  }

  /** Frames one fragment of the stream on the wire (compressed, if the message is). */
  #writeFragment(stream: OutgoingStream, fragment: Fragment): void {
    const first = !stream.started;
    const opcode = stream.nextOpcode(fragment.data.length);
    let payload = fragment.data;
    if (stream.compress) {
      payload = this.#compression!.compressFragment!(fragment.data, fragment.fin);
      recordDeflate(this.#ctx.counters, fragment.data.length, payload.length);
    }
    // RFC 7692 §6.1: RSV1 on the first frame of a compressed message only.
    this.#sink.frame(opcode, payload, fragment.fin, stream.compress && first);
    if (fragment.fin) {
      this.#writingStream = null;
      this.#ctx.counters[Counter.MessagesOut]!++;
      recordSize(this.#ctx.counters, Counter.MessageOutBytes, stream.size);
    }
  }

  /**
   * Sends a message framed once for many connections (a broadcast), compressed or not as this
   * connection negotiated. `release` returns pooled frames once written, on every path.
   */
  [kSendPrepared](message: PreparedMessage, priority: Priority, release: (() => void) | null): SendStatus {
    if (this.readyState !== ReadyState.Open) {
      release?.();
      return 'dropped';
    }
    const frames = message.frameFor(this.#compression);
    const compressed = frames !== message.plain;
    const admission = admit(this.#ctx.limits, this.bufferedAmount, this.#waiting, frames.length);
    // A broadcast reaches many connections at once: no queue entry when it can go now.
    if (admission === 'write') {
      this.#writeFrames(frames, compressed, release);
      return 'written';
    }
    return this.#admitted(admission, { kind: 'frames', priority, size: frames.length, message, frames, compressed, release });
  }

  ping(data: MessageData = EMPTY): void {
    this.#control(Opcode.Ping, data);
  }

  pong(data: MessageData = EMPTY): void {
    this.#control(Opcode.Pong, data);
  }

  /** Control frames skip the queue and may come between the frames of a fragmented message (RFC 6455 §5.4). */
  #control(opcode: typeof Opcode.Ping | typeof Opcode.Pong, data: MessageData): void {
    if (this.readyState !== ReadyState.Open) return;
    const payload = messageBytes(data);
    if (payload.length > MAX_CONTROL_PAYLOAD) throw new RangeError(`a ${opcode === Opcode.Ping ? 'ping' : 'pong'} carries at most 125 bytes (RFC 6455 §5.5)`);
    this.#sink.frame(opcode, payload, true, false);
  }

  close(code: number = CloseCode.Normal, reason = ''): void {
    if (this.readyState !== ReadyState.Open) return;
    this.#closing().start(code, reason);
  }

  terminate(): void {
    this.#closing().terminate();
  }

  subscribe(topic: string, options?: SubscribeOptions): void {
    if (this.readyState === ReadyState.Closed || this.#topics?.has(topic) === true) return;
    const count = this.#ctx.topics.subscribe(this, topic, options?.since);
    (this.#topics ??= new Set()).add(topic);
    this.#subscription(topic, count, count - 1);
  }

  unsubscribe(topic: string): void {
    if (this.#topics === null || !this.#topics.delete(topic)) return;
    const count = this.#ctx.topics.unsubscribe(this, topic);
    this.#subscription(topic, count, count + 1);
  }

  /** The app's `subscription` hook, when it has one. */
  #subscription(topic: string, newCount: number, oldCount: number): void {
    const handler = this.#ctx.app.subscription;
    if (handler === undefined) return;
    try {
      handler(this, topic, newCount, oldCount);
    } catch (error) {
      this.#handlerThrew('subscription', error);
    }
  }

  tag(key: string): void {
    if (this.readyState === ReadyState.Closed || this.#tags?.has(key) === true) return;
    (this.#tags ??= new Set()).add(key);
    this.#ctx.directory.tag(this, key);
  }

  untag(key: string): void {
    if (this.#tags === null || !this.#tags.delete(key)) return;
    this.#ctx.directory.untag(this, key);
  }

  isSubscribed(topic: string): boolean {
    return this.#topics?.has(topic) === true;
  }

  publish(topic: string, data: MessageData, options: PublishOptions & { readonly withId: true }): Promise<string>;
  publish(topic: string, data: MessageData, options?: PublishOptions): void;
  publish(topic: string, data: MessageData, options?: PublishOptions): Promise<string> | undefined {
    return this.#ctx.topics.publish(topic, data, options, this);
  }

  /**
   * Earlier messages still wait (queued, compressing, or a message in fragments on the wire
   * that has not ended): a new one may not overtake them or come between its frames.
   */
  get #waiting(): boolean {
    return (this.#queue !== null && this.#queue.length > 0) || (this.#encoder !== null && this.#encoder.busy) || this.#writingStream !== null;
  }

  /** A message that could not simply be written now: queued, written after all, or dropped. */
  #admitted(admission: Admission, message: QueuedData | QueuedFrames): SendStatus {
    const ctx = this.#ctx;
    if (admission === 'over-limit') {
      const verdict = ctx.slowClient.overLimit(this.#overLimit(message.priority, message.size));
      if (verdict !== 'queue') {
        if (verdict === 'close') this.#failSlow();
        this.#onQueuedDrop(message);
        message.release?.();
        ctx.counters[Counter.Drops]!++;
        return 'dropped';
      }
      admission = this.#waiting || this.bufferedAmount >= ctx.limits.highWaterMark ? 'queue' : 'write';
    }
    if (admission === 'write') {
      this.#write(message);
      return 'written';
    }
    (this.#queue ??= new OutboundQueue()).push(message);
    return this.#waited(this.bufferedAmount >= ctx.limits.highWaterMark);
  }

  /**
   * Something was queued: `behindSocket` when the socket is the reason (backpressure), else a
   * compression or an unfinished message in fragments of this connection holds it back.
   * 'buffered' promises `drain`.
   */
  #waited(behindSocket: boolean): SendStatus {
    const ctx = this.#ctx;
    if (!ctx.backlogged.has(this)) {
      ctx.backlogged.add(this);
      this.#backloggedSince = Date.now();
    }
    if (behindSocket) ctx.counters[Counter.BackpressureEvents]!++;
    // Behind a message in fragments it waits as long as the app takes to finish that message.
    if (behindSocket || this.#writingStream !== null) this.#needDrain = true;
    // Waiting only behind a compression of its own is not backpressure: it is out in a moment.
    return !behindSocket && this.#writingStream === null && this.#encoder !== null && this.#encoder.busy ? 'written' : 'buffered';
  }

  #overLimit(priority: Priority, size: number): OverLimit {
    const ctx = this.#ctx;
    return {
      ws: this,
      buffered: this.bufferedAmount,
      size,
      priority,
      limit: ctx.limits.maxBackpressure,
      dropLowPriority: () => {
        const queue = this.#queue;
        if (queue !== null) {
          const others = this.bufferedAmount - queue.bytes;
          ctx.counters[Counter.Drops]! += queue.dropLow(size, ctx.limits.maxBackpressure - others, this.#onQueuedDrop);
        }
        return this.bufferedAmount;
      },
    };
  }

  /** The slow-client policy closes this connection (1008). */
  #failSlow(): void {
    this.#ctx.logger.warn({ remote: this.remoteAddress, buffered: this.bufferedAmount }, 'closing slow client: backpressure limit reached');
    this.#closing().fail(CloseCode.PolicyViolation, 'slow client');
  }

  /**
   * A queued message dropped by the slow-client policy (the queue releases its pooled frames):
   * the app hears of it, and a message in fragments drops the fragments still to come too.
   */
  readonly #onQueuedDrop = (message: QueuedMessage): void => {
    if (message.kind === 'data') this.#tellDropped(message.payload, message.binary);
    else if (message.kind === 'frames') this.#tellDropped(message.message.payload, message.message.binary);
    else for (const fragment of message.stream.drop()) this.#tellDropped(fragment.data, message.stream.binary);
  };

  /** The app's `dropped` handler, with a copy of the bytes (a broadcast's may be pooled memory). */
  #tellDropped(data: Buffer, binary: boolean): void {
    const handler = this.#ctx.app.dropped;
    if (handler === undefined) return;
    try {
      handler(this, Buffer.from(data), binary);
    } catch (error) {
      this.#handlerThrew('dropped', error);
    }
  }

  /**
   * slowClientTimeout: backlogged that long, the policy decides. 'drop' drops what waits in the
   * queue (never the rest of a message on the wire); then, or on 'wait', the watch starts over.
   */
  [kStalled](): void {
    if (this.readyState !== ReadyState.Open) return;
    const verdict = this.#ctx.slowClient.stalled(this, this.bufferedAmount);
    this.#ctx.logger.info({ remote: this.remoteAddress, buffered: this.bufferedAmount, verdict }, 'slow client: backlogged past slowClientTimeout');
    if (verdict === 'close') {
      this.#closing().fail(CloseCode.PolicyViolation, 'slow client');
      return;
    }
    if (verdict === 'drop') {
      const queue = this.#queue;
      if (queue !== null) {
        this.#ctx.counters[Counter.Drops]! += queue.length;
        queue.clear(this.#onQueuedDrop);
      }
      if (this.readyState !== ReadyState.Open) return;
      this.#pump();
    }
    if (this.#backloggedSince !== null) this.#backloggedSince = Date.now();
  }

  /** Moves one admitted message to the sink, compressing it first if it should be. */
  #write(message: QueuedData | QueuedFrames): void {
    if (message.kind === 'frames') {
      this.#writeFrames(message.frames, message.compressed, message.release);
      return;
    }
    const opcode = message.binary ? Opcode.Binary : Opcode.Text;
    if (!message.compress || this.#encoder === null) {
      this.#frame(opcode, message.payload);
      return;
    }
    this.#ctx.counters[Counter.MessagesOut]!++;
    recordSize(this.#ctx.counters, Counter.MessageOutBytes, message.payload.length);
    this.#encoder.encode(opcode, message.payload);
  }

  #frame(opcode: Opcode, payload: Buffer): void {
    this.#sink.frame(opcode, payload, true, false);
    this.#ctx.counters[Counter.MessagesOut]!++;
    recordSize(this.#ctx.counters, Counter.MessageOutBytes, payload.length);
  }

  /**
   * Frames built once for many connections: their size is counted as framed (and compressed, if
   * they are). `compressed`: made without this connection's context, which therefore starts over.
   */
  #writeFrames(frames: Buffer, compressed: boolean, release: (() => void) | null): void {
    if (compressed) this.#compression!.afterSharedFrame();
    this.#sink.raw(frames);
    if (release !== null) (this.#inFlight ??= []).push(release);
    this.#ctx.counters[Counter.MessagesOut]!++;
    recordSize(this.#ctx.counters, Counter.MessageOutBytes, frames.length);
  }

  /**
   * Writes what waits while the socket keeps up: the fragments of a message on the wire first
   * (nothing else may come between them), then queued messages; then a held close frame, then
   * `drain`.
   */
  #pump(): void {
    const ctx = this.#ctx;
    const encoder = this.#encoder;
    const queue = this.#queue;
    for (;;) {
      if (this.#sink.pendingBytes + this.#socket.writableLength >= ctx.limits.highWaterMark) return;
      const stream = this.#writingStream;
      if (stream !== null) {
        const fragment = stream.shift();
        if (fragment === undefined) break; // the app has not sent its next fragment yet
        this.#writeFragment(stream, fragment);
        continue;
      }
      if (queue === null || queue.length === 0 || (encoder !== null && encoder.busy)) break;
      const next = queue.shift()!;
      if (next.kind === 'stream') {
        if (!next.stream.dropped) this.#writingStream = next.stream;
      } else {
        this.#write(next);
      }
    }
    if (encoder !== null && encoder.busy) return;
    if (this.#close !== null && this.#close.sendHeld()) return;
    if (this.#needDrain && this.bufferedAmount <= ctx.lowWaterMark && this.readyState === ReadyState.Open) {
      this.#needDrain = false;
      const drain = ctx.app.drain;
      if (drain) {
        try {
          drain(this);
        } catch (error) {
          this.#handlerThrew('drain', error);
        }
      }
    }
    if ((queue === null || queue.length === 0) && !this.#needDrain && (this.#writingStream === null || !this.#writingStream.hasPending)) {
      ctx.backlogged.delete(this);
      this.#backloggedSince = null;
    }
  }

  static readonly #flushing: FlushHook<Connection> = (connection, bytes) => {
    connection.#ctx.counters[Counter.BytesOut]! += bytes;
    const releases = connection.#inFlight;
    connection.#inFlight = null;
    // The write callback frees pooled frames once the kernel has them, and keeps the queue
    // moving. The socket emits 'drain' only after a write() that returned false, i.e. past its
    // own high-water mark; ours may be lower. So a write that leaves the socket at or above our
    // mark gets a callback too: a message queued behind it after this flush (send() said
    // 'buffered') would otherwise wait for a write that never comes.
    const waiting = connection.#queue !== null && connection.#queue.length > 0;
    const behind = connection.#socket.writableLength + bytes >= connection.#ctx.limits.highWaterMark;
    if (releases === null && !waiting && !connection.#needDrain && !behind) return undefined;
    return () => {
      if (releases !== null) for (const release of releases) release();
      connection.#pump();
    };
  };

  static readonly #encoderOps: EncoderOps<Connection> = {
    acceptsData: (connection) => connection.readyState !== ReadyState.Closed && !(connection.#close?.closeSent ?? false),
    compressed(connection, error) {
      // RFC 6455 §5.5.1: nothing follows our close frame (sent meanwhile by a failure).
      if (!this.acceptsData(connection)) return;
      if (error !== null) {
        connection.#ctx.logger.error({ err: error }, 'compression failed');
        connection.#closing().fail(CloseCode.InternalError, 'compression failed');
        return;
      }
      connection.#pump();
      connection.#close?.caughtUp();
    },
  };

  // ---- reading --------------------------------------------------------------------------

  // Socket listeners: one function each for every connection (`this` is the socket), instead of
  // five closures per connection; they find the connection through kConnection.
  static #onData(this: OwnedSocket, chunk: Buffer): void {
    this[kConnection].#read(chunk, false);
  }

  static readonly [kReads]: ReadBuffer = {
    buffer: READ_BUFFER,
    callback(this: Socket, bytes: number, buffer: Buffer): boolean {
      (this as unknown as OwnedSocket)[kConnection].#read(buffer.subarray(0, bytes), true);
      return true;
    },
  };
  static #onEnd(this: OwnedSocket): void {
    this[kConnection].#closing().peerEnded();
  }
  static #onClose(this: OwnedSocket): void {
    this[kConnection].#socketClosed();
  }
  static #onError(this: OwnedSocket, error: Error): void {
    const connection = this[kConnection];
    connection.#ctx.logger.debug({ remote: connection.remoteAddress, err: error.message }, 'socket error');
  }
  static #onDrain(this: OwnedSocket): void {
    this[kConnection].#pump();
  }

  /** A read; `transient` when it is a view of the worker's read buffer, valid only now. */
  #read(chunk: Buffer, transient: boolean): void {
    this.#lastActive = this.#ctx.idle.tick;
    this.#ctx.counters[Counter.BytesIn]! += chunk.length;
    this.#reader.push(chunk, transient);
  }

  static readonly #readerEvents: MessageEvents<Connection> = {
    message(connection, data, isBinary) {
      connection.#ctx.counters[Counter.MessagesIn]!++;
      recordSize(connection.#ctx.counters, Counter.MessageInBytes, data.length);
      const handler = connection.#ctx.app.message;
      if (handler === undefined || connection.readyState !== ReadyState.Open) return;
      try {
        // The app's `data` stays valid after the handler returns (App.message's contract).
        handler(connection, ownBytes(data), isBinary);
      } catch (error) {
        connection.#handlerThrew('message', error);
      }
    },
    ping(connection, payload) {
      // RFC 6455 §5.5.2: answer a ping with a pong carrying the same data, unless closing (or
      // the app answers: autoPong off).
      if (connection.#ctx.autoPong && connection.readyState === ReadyState.Open) connection.#sink.frame(Opcode.Pong, payload, true, false);
      connection.#controlHandler('ping', payload);
    },
    pong: (connection, payload) => connection.#controlHandler('pong', payload),
    close: (connection, code, reason) => connection.#closing().peerClosed(code, reason),
    error(connection, error: ProtocolError) {
      const ctx = connection.#ctx;
      ctx.counters[Counter.ProtocolErrors]!++;
      ctx.logger.warn({ remote: connection.remoteAddress, code: error.code, closeCode: error.closeCode }, `closing connection: ${error.message}`);
      connection.#closing().fail(error.closeCode, error.message);
    },
    readPressure(connection, stop) {
      connection.#readerStopped = stop;
      if (stop) connection.#socket.pause();
      else if (!connection.#held) connection.#socket.resume();
    },
    caughtUp: (connection) => connection.#close?.caughtUp(),
  };

  /** Runs the app's ping or pong handler, if it has one. */
  #controlHandler(name: 'ping' | 'pong', payload: Buffer): void {
    const handler = this.#ctx.app[name];
    if (handler === undefined) return;
    try {
      handler(this, ownBytes(payload));
    } catch (error) {
      this.#handlerThrew(name, error);
    }
  }

  // ---- closing --------------------------------------------------------------------------

  #closing(): CloseHandshake<Connection> {
    return (this.#close ??= new CloseHandshake(Connection.#closeOps, this, this.#ctx.close));
  }

  static readonly #closeOps: CloseOps<Connection> = {
    socket: (connection) => connection.#socket,
    busy: (connection) => connection.#reader.inflating || (connection.#encoder !== null && connection.#encoder.busy),
    // A message in fragments the app has not finished does not hold our close back: the
    // close frame may come between its frames (RFC 6455 §5.4), and the peer drops the rest.
    backlogged: (connection) => {
      const stream = connection.#writingStream;
      return (connection.#queue !== null && connection.#queue.length > 0) || (connection.#encoder !== null && connection.#encoder.busy) || (stream !== null && (stream.hasPending || stream.finished));
    },
    dropQueued: (connection) => connection.#queue?.clear(),
    // Control frames skip the queue: they are small and must not wait behind data. Nothing
    // follows our close frame (RFC 6455 §5.5.1): what still waits goes.
    sendCloseFrame: (connection, payload) => {
      connection.#sink.frame(Opcode.Close, payload, true, false);
      connection.#queue?.clear();
      connection.#writingStream = null;
      connection.#openStream = null;
    },
    stopReading: (connection) => connection.#reader.stop(),
    flush: (connection) => {
      connection.#sink.flush();
    },
  };

  #socketClosed(): void {
    if (this.readyState === ReadyState.Closed) return;
    const outcome = this.#closing().socketClosed();
    const ctx = this.#ctx;
    this.#reader.stop();
    this.#queue?.clear();
    this.#writingStream = null;
    this.#openStream = null;
    this.#sink.take();
    const releases = this.#inFlight;
    this.#inFlight = null;
    if (releases !== null) for (const release of releases) release();
    this.#compression?.close();
    const topics = this.#topics;
    this.#topics = null;
    if (topics !== null) {
      for (const topic of topics) {
        const count = ctx.topics.unsubscribe(this, topic);
        this.#subscription(topic, count, count + 1);
      }
    }
    ctx.directory.remove(this, this.#tags ?? []);
    this.#tags = null;
    ctx.backlogged.delete(this);
    this.#backloggedSince = null;
    ctx.counters[Counter.Connections]!--;
    ctx.closed(this);
    ctx.counters[closeCounter(outcome.exchanged)]!++;
    const handler = ctx.app.close;
    if (handler === undefined) return;
    try {
      handler(this, outcome.code, outcome.reason);
    } catch (error) {
      ctx.logger.error({ err: error, handler: 'close', remote: this.remoteAddress }, 'app close handler threw');
    }
  }

  /** An app handler threw: only this connection closes, with 1011. */
  #handlerThrew(name: string, error: unknown): void {
    this.#ctx.logger.error({ err: error, handler: name, remote: this.remoteAddress }, `app ${name} handler threw; closing connection with 1011`);
    if (this.readyState === ReadyState.Open) this.#closing().fail(CloseCode.InternalError, 'internal error');
  }
}
