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
import type { App, MessageData, Priority, PublishOptions, SendOptions, SendStatus, ServerWebSocket, Shard, SubscribeOptions } from '../shared/app.ts';
import { ReadyState, messageBytes, sendsBinary } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { ProtocolError } from '../shared/errors.ts';
import type { ByteArena } from '../shared/frame-writer.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { MessageEncoder } from '../shared/message-encoder.ts';
import type { EncoderOps } from '../shared/message-encoder.ts';
import { MessageReader } from '../shared/message-reader.ts';
import type { MessageEvents } from '../shared/message-reader.ts';
import { MAX_CONTROL_PAYLOAD, Opcode } from '../shared/opcodes.ts';
import { Counter, recordSize, closeCounter } from '../shared/worker-counters.ts';
import { FrameSink } from '../runtime/frame-flush.ts';
import type { FrameTransport } from '../runtime/frame-transport.ts';
import type { FlushHook, FlushScheduler } from '../runtime/frame-flush.ts';
import { CloseHandshake } from './close-handshake.ts';
import type { CloseOps, CloseSettings } from './close-handshake.ts';
import type { ReadBuffer } from './socket-rehome.ts';
import { OutboundQueue } from './outbound-queue.ts';
import type { QueuedMessage } from './outbound-queue.ts';
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
  /** Connections with messages queued behind a slow socket (the only ones whose backlog counts for load). */
  readonly backlogged: Set<Connection>;
  readonly closed: (connection: Connection) => void;
}

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
    return this.#sink.pendingBytes + (this.#queue?.bytes ?? 0) + this.#socket.writableLength;
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
    // echo server lives on.
    if (admission === 'write' && !compress) {
      this.#frame(binary ? Opcode.Binary : Opcode.Text, payload);
      return 'written';
    }
    const message: QueuedMessage = { priority: options?.priority ?? 'normal', size: payload.length, payload, binary, compress, frames: null, release: null };
    return this.#admitted(admission, message);
  }

  /**
   * Sends a message framed once for many connections: `plain` is the uncompressed frame,
   * `compressed` the same message compressed without context takeover (or null). `release`
   * returns pooled frames once written, on every path.
   */
  [kSendPrepared](plain: Buffer, compressed: Buffer | null, priority: Priority, release: (() => void) | null): SendStatus {
    if (this.readyState !== ReadyState.Open) {
      release?.();
      return 'dropped';
    }
    const frames = compressed !== null && this.#compression !== null && this.#compression.acceptsSharedFrames ? compressed : plain;
    const admission = admit(this.#ctx.limits, this.bufferedAmount, this.#waiting, frames.length);
    // A broadcast reaches many connections at once: no queue entry when it can go now.
    if (admission === 'write') {
      this.#writeFrames(frames, release);
      return 'written';
    }
    return this.#admitted(admission, { priority, size: frames.length, payload: null, binary: false, compress: false, frames, release });
  }

  ping(data: MessageData = EMPTY): void {
    if (this.readyState !== ReadyState.Open) return;
    const payload = messageBytes(data);
    if (payload.length > MAX_CONTROL_PAYLOAD) throw new RangeError('a ping carries at most 125 bytes (RFC 6455 §5.5)');
    this.#sink.frame(Opcode.Ping, payload, true, false);
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

  /** Earlier messages still wait (queued, or compressing): a new one may not overtake them. */
  get #waiting(): boolean {
    return (this.#queue !== null && this.#queue.length > 0) || (this.#encoder !== null && this.#encoder.busy);
  }

  /** A message that could not simply be written now: queued, written after all, or dropped. */
  #admitted(admission: Admission, message: QueuedMessage): SendStatus {
    const ctx = this.#ctx;
    if (admission === 'over-limit') {
      const verdict = ctx.slowClient.overLimit(this.#overLimit(message));
      if (verdict !== 'queue') {
        if (verdict === 'close') {
          ctx.logger.warn({ remote: this.remoteAddress, buffered: this.bufferedAmount }, 'closing slow client: backpressure limit reached');
          this.#closing().fail(CloseCode.PolicyViolation, 'slow client');
        }
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
    const buffered = this.bufferedAmount;
    const behindSocket = buffered >= ctx.limits.highWaterMark;
    if (behindSocket) {
      ctx.counters[Counter.BackpressureEvents]!++;
      this.#needDrain = true;
    }
    (this.#queue ??= new OutboundQueue()).push(message);
    ctx.backlogged.add(this);
    // Waiting only behind a compression of its own connection is not backpressure.
    return !behindSocket && this.#encoder !== null && this.#encoder.busy ? 'written' : 'buffered';
  }

  #overLimit(message: QueuedMessage): OverLimit {
    const ctx = this.#ctx;
    return {
      ws: this,
      buffered: this.bufferedAmount,
      size: message.size,
      priority: message.priority,
      limit: ctx.limits.maxBackpressure,
      dropLowPriority: () => {
        const queue = this.#queue;
        if (queue !== null) {
          const others = this.bufferedAmount - queue.bytes;
          ctx.counters[Counter.Drops]! += queue.dropLow(message.size, ctx.limits.maxBackpressure - others);
        }
        return this.bufferedAmount;
      },
    };
  }

  /** Moves one admitted message to the sink, compressing it first if it should be. */
  #write(message: QueuedMessage): void {
    if (message.frames !== null) {
      this.#writeFrames(message.frames, message.release);
      return;
    }
    const opcode = message.binary ? Opcode.Binary : Opcode.Text;
    if (!message.compress || this.#encoder === null) {
      this.#frame(opcode, message.payload!);
      return;
    }
    this.#ctx.counters[Counter.MessagesOut]!++;
    recordSize(this.#ctx.counters, Counter.MessageOutBytes, message.payload!.length);
    this.#encoder.encode(opcode, message.payload!);
  }

  #frame(opcode: Opcode, payload: Buffer): void {
    this.#sink.frame(opcode, payload, true, false);
    this.#ctx.counters[Counter.MessagesOut]!++;
    recordSize(this.#ctx.counters, Counter.MessageOutBytes, payload.length);
  }

  /** Frames built once for many connections: their size is counted as framed (and compressed, if they are). */
  #writeFrames(frames: Buffer, release: (() => void) | null): void {
    this.#sink.raw(frames);
    if (release !== null) (this.#inFlight ??= []).push(release);
    this.#ctx.counters[Counter.MessagesOut]!++;
    recordSize(this.#ctx.counters, Counter.MessageOutBytes, frames.length);
  }

  /** Writes queued messages while the socket keeps up; then a held close frame, then `drain`. */
  #pump(): void {
    const ctx = this.#ctx;
    const encoder = this.#encoder;
    const queue = this.#queue;
    while (queue !== null && queue.length > 0 && (encoder === null || !encoder.busy)) {
      if (this.#sink.pendingBytes + this.#socket.writableLength >= ctx.limits.highWaterMark) return;
      this.#write(queue.shift()!);
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
    if ((queue === null || queue.length === 0) && !this.#needDrain) ctx.backlogged.delete(this);
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
      // RFC 6455 §5.5.2: answer a ping with a pong carrying the same data, unless closing.
      if (connection.readyState === ReadyState.Open) connection.#sink.frame(Opcode.Pong, payload, true, false);
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
    backlogged: (connection) => connection.#waiting,
    dropQueued: (connection) => connection.#queue?.clear(),
    // Control frames skip the queue: they are small and must not wait behind data.
    sendCloseFrame: (connection, payload) => connection.#sink.frame(Opcode.Close, payload, true, false),
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
