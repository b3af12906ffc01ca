import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { App, MessageData, Priority, SendOptions, SendStatus, ServerWebSocket, Shard } from '../shared/app.ts';
import { ReadyState, messageBytes } from '../shared/app.ts';
import { CloseCode, encodeClosePayload } from '../shared/close.ts';
import type { ProtocolError } from '../shared/errors.ts';
import { FrameWriter } from '../shared/frame-writer.ts';
import type { ByteArena } from '../shared/frame-writer.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import type { MessageHandler } from '../shared/message-reader.ts';
import { MessageReader } from '../shared/message-reader.ts';
import { Opcode } from '../shared/opcodes.ts';
import { Counter, closeCounter } from '../shared/worker-counters.ts';
import type { FlushScheduler } from './flush-scheduler.ts';
import { OutboundQueue } from './outbound-queue.ts';
import type { QueuedMessage } from './outbound-queue.ts';

/** What every connection of a worker shares. */
export interface ConnectionContext {
  readonly app: App<unknown>;
  readonly shard: Shard;
  readonly logger: Logger;
  readonly arena: ByteArena;
  readonly flusher: FlushScheduler;
  readonly counters: Float64Array;
  readonly maxPayloadLength: number;
  readonly closeTimeoutMs: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly maxBackpressure: number;
  readonly slowClient: 'close' | 'drop' | 'custom';
  readonly topics: TopicMembership;
  /** Connections with messages queued behind a slow socket (the only ones whose backlog counts for load). */
  readonly backlogged: Set<Connection>;
  readonly onClosed: (connection: Connection) => void;
}

/** The topic registry as a connection sees it. */
export interface TopicMembership {
  subscribe(connection: Connection, topic: string): void;
  unsubscribe(connection: Connection, topic: string): void;
  publish(topic: string, data: MessageData, options: SendOptions | undefined, except: Connection | null): void;
}

const EMPTY = Buffer.alloc(0);

/** Where a socket's listeners find their Connection. */
const kConnection = Symbol('shardws.connection');
type OwnedSocket = Duplex & { [kConnection]: Connection };


/**
 * Connection is one WebSocket after the 101: the read path (socket → MessageReader → app),
 * the write path (send → queue when the socket is slow → FrameWriter → one writev per tick),
 * the close handshake (RFC 6455 §7) and the timers. It is the `ws` the app's handlers get.
 */
export class Connection implements ServerWebSocket<unknown>, MessageHandler {
  data: unknown;
  readonly remoteAddress: string;
  readonly protocol: string;
  readonly extensions: string;

  readonly #socket: Duplex;
  readonly #ctx: ConnectionContext;
  readonly #reader: MessageReader;
  readonly #writer: FrameWriter;
  /** Created on the first message that has to wait: most connections never need one. */
  #queue: OutboundQueue | null = null;
  readonly #compression: MessageCompression | null;
  #topics: Set<string> | null = null;

  #state: ReadyState = ReadyState.Open;
  #scheduled = false;
  #compressing = false;
  #needDrain = false;
  /** Our close frame, held until queued data ahead of it is written. */
  #pendingClose: Buffer | null = null;
  #closeSent = false;
  /** The code of the close frame we sent (1005: none in it). */
  #sentCloseCode = 0;
  #closeTimer: NodeJS.Timeout | null = null;
  #peerClose: { code: number; reason: string } | null = null;
  /** Sweeps of the idle timer since the peer last sent anything. */
  idleTicks = 0;
  pingSent = false;
  /** Pooled frames handed to the socket and not yet confirmed written. */
  #inFlight: (() => void)[] | null = null;
  /** The peer sent its FIN while a message was inflating: end our side once the reader caught up. */
  #peerEnded = false;

  constructor(
    socket: Duplex,
    ctx: ConnectionContext,
    init: { data: unknown; remoteAddress: string; protocol: string; extensions: string; compression: MessageCompression | null },
  ) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.data = init.data;
    this.remoteAddress = init.remoteAddress;
    this.protocol = init.protocol;
    this.extensions = init.extensions;
    this.#compression = init.compression;
    // Frames that arrive with the peer's FIN are still read and answered (#onEnd ends our side),
    // even when they wait behind an inflation: sockets come from a listener that would end it at once.
    (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    this.#writer = new FrameWriter(ctx.arena, null);
    this.#reader = new MessageReader(this, {
      role: 'server',
      maxMessageSize: ctx.maxPayloadLength,
      inflater: init.compression?.inflater ?? null,
    });
    (socket as OwnedSocket)[kConnection] = this;
    socket.on('data', Connection.#onData);
    socket.on('end', Connection.#onEnd);
    socket.on('close', Connection.#onClose);
    socket.on('error', Connection.#onError);
    socket.on('drain', Connection.#onDrain);
    // Counted from construction, before the socket stops counting as a handshake: the primary
    // reads these counters from another thread and must never see the connection as neither.
    ctx.counters[Counter.Connections]!++;
  }

  get readyState(): ReadyState {
    return this.#state;
  }

  get shard(): Shard {
    return this.#ctx.shard;
  }

  get bufferedAmount(): number {
    return this.#writer.pendingBytes + (this.#queue?.bytes ?? 0) + this.#socket.writableLength;
  }

  /** Messages waiting behind a slow socket. */
  get #queued(): number {
    return this.#queue?.length ?? 0;
  }

  get topics(): readonly string[] {
    return this.#topics === null ? [] : [...this.#topics];
  }

  /** Delivers bytes that arrived with the upgrade request. */
  start(head: Buffer): void {
    this.#call('open', () => this.#ctx.app.open?.(this));
    if (head.length > 0 && this.#state !== ReadyState.Closed) this.#readChunk(head);
  }

  // ---- read path ------------------------------------------------------------------------

  // Socket listeners: one function each for every connection (`this` is the socket), instead of
  // five closures per connection; they find the connection through kConnection.
  static #onData(this: OwnedSocket, chunk: Buffer): void {
    this[kConnection].#readChunk(chunk);
  }
  static #onEnd(this: OwnedSocket): void {
    this[kConnection].#peerEnd();
  }
  static #onClose(this: OwnedSocket): void {
    this[kConnection].#socketClosed();
  }
  static #onError(this: OwnedSocket, error: Error): void {
    this[kConnection].#socketFailed(error);
  }
  static #onDrain(this: OwnedSocket): void {
    this[kConnection].#pump();
  }

  #readChunk(chunk: Buffer): void {
    this.idleTicks = 0;
    this.pingSent = false;
    this.#ctx.counters[Counter.BytesIn]! += chunk.length;
    this.#reader.push(chunk);
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    this.#ctx.counters[Counter.MessagesIn]!++;
    if (this.#state !== ReadyState.Open) return;
    const app = this.#ctx.app;
    if (app.message) this.#call('message', () => app.message!(this, data, isBinary));
  }

  onPing(payload: Buffer): void {
    // RFC 6455 §5.5.2: answer a ping with a pong carrying the same data, unless closing.
    if (this.#state === ReadyState.Open) this.#control(Opcode.Pong, payload);
    if (this.#ctx.app.ping) this.#call('ping', () => this.#ctx.app.ping!(this, payload));
  }

  onPong(payload: Buffer): void {
    if (this.#ctx.app.pong) this.#call('pong', () => this.#ctx.app.pong!(this, payload));
  }

  onClose(code: number, reason: string): void {
    this.#peerClose = { code, reason };
    if (this.#state === ReadyState.Open) {
      // RFC 6455 §5.5.1: reply with a close frame echoing the status; data not yet sent is
      // dropped, the peer has stopped reading it. A message being compressed is the current
      // message, which the reply may wait for: it follows that message out (see #pump).
      this.#state = ReadyState.Closing;
      this.#dropQueued();
      const payload = code === CloseCode.NoStatus ? EMPTY : encodeClosePayload(code);
      if (this.#compressing) this.#pendingClose = payload;
      else this.#sendClose(payload);
    }
    // RFC 6455 §7.1.1: once both close frames are exchanged, the server closes TCP first
    // (a held reply does this when it is sent).
    if (this.#closeSent) this.#endAfterFlush();
    else this.#startCloseTimer();
  }

  onError(error: ProtocolError): void {
    this.#ctx.counters[Counter.ProtocolErrors]!++;
    this.#ctx.logger.warn({ remote: this.remoteAddress, code: error.code, closeCode: error.closeCode }, `closing connection: ${error.message}`);
    this.#fail(error.closeCode, error.message);
  }

  onReadPressure(stop: boolean): void {
    if (stop) this.#socket.pause();
    else this.#socket.resume();
  }

  onCaughtUp(): void {
    if (!this.#peerEnded) return;
    this.#peerEnded = false;
    this.#peerEnd();
  }

  // ---- write path -----------------------------------------------------------------------

  send(data: MessageData, options?: SendOptions): SendStatus {
    if (this.#state !== ReadyState.Open) return 'dropped';
    const payload = messageBytes(data);
    const binary = options?.binary ?? typeof data !== 'string';
    const compression = this.#compression;
    const compress = compression !== null && options?.compress !== false && payload.length >= compression.threshold;
    // The common case (nothing waiting, socket keeping up, no compression) writes at once,
    // without building a queue entry: per-message garbage is what an echo server lives on.
    if (!compress && this.#canWriteNow(payload.length)) {
      this.#frame(binary ? Opcode.Binary : Opcode.Text, payload, false);
      return 'written';
    }
    return this.#admit({
      priority: options?.priority ?? 'normal',
      size: payload.length,
      payload,
      binary,
      compress,
      frames: null,
      release: null,
    });
  }

  /**
   * Sends a message framed once for many connections: `plain` is the uncompressed frame,
   * `compressed` the same message compressed without context takeover (or null).
   */
  sendPrepared(plain: Buffer, compressed: Buffer | null, priority: Priority, release: (() => void) | null): SendStatus {
    if (this.#state !== ReadyState.Open) {
      release?.();
      return 'dropped';
    }
    const useCompressed = compressed !== null && this.#compression !== null && this.#compression.acceptsSharedFrames;
    const frames = useCompressed ? compressed : plain;
    // A broadcast reaches many connections at once: skip the queue entry when it can go now.
    if (this.#canWriteNow(frames.length)) {
      this.#writeFrames(frames, release);
      return 'written';
    }
    return this.#admit({ priority, size: frames.length, payload: null, binary: false, compress: false, frames, release });
  }

  /** Whether a message of `size` bytes may go to the writer right away (what #admit would decide). */
  #canWriteNow(size: number): boolean {
    if (this.#queue !== null && this.#queue.length > 0) return false;
    if (this.#compressing || this.#pendingClose !== null) return false;
    const ctx = this.#ctx;
    const buffered = this.bufferedAmount;
    return buffered < ctx.highWaterMark && (buffered === 0 || buffered + size <= ctx.maxBackpressure);
  }

  ping(data: MessageData = EMPTY): void {
    if (this.#state !== ReadyState.Open) return;
    const payload = messageBytes(data);
    if (payload.length > 125) throw new RangeError('a ping carries at most 125 bytes (RFC 6455 §5.5)');
    this.#control(Opcode.Ping, payload);
  }

  close(code: number = CloseCode.Normal, reason = ''): void {
    if (this.#state !== ReadyState.Open) return;
    const payload = encodeClosePayload(code, reason);
    this.#state = ReadyState.Closing;
    this.#startCloseTimer();
    if (this.#queued > 0 || this.#compressing) this.#pendingClose = payload;
    else this.#sendClose(payload);
  }

  terminate(): void {
    this.#state = ReadyState.Closing;
    this.#socket.destroy();
  }

  subscribe(topic: string): void {
    if (this.#state === ReadyState.Closed || this.#topics?.has(topic) === true) return;
    (this.#topics ??= new Set()).add(topic);
    this.#ctx.topics.subscribe(this, topic);
  }

  unsubscribe(topic: string): void {
    if (this.#topics === null || !this.#topics.delete(topic)) return;
    this.#ctx.topics.unsubscribe(this, topic);
  }

  isSubscribed(topic: string): boolean {
    return this.#topics?.has(topic) === true;
  }

  publish(topic: string, data: MessageData, options?: SendOptions): void {
    this.#ctx.topics.publish(topic, data, options, this);
  }

  /** Writes what this tick gathered: one writev of all frames (called by the FlushScheduler). */
  flush(): void {
    this.#scheduled = false;
    const chunks = this.#writer.take();
    if (chunks === null) return;
    const socket = this.#socket;
    if (socket.destroyed) {
      this.#releaseInFlight();
      return;
    }
    let bytes = 0;
    for (let i = 0; i < chunks.length; i++) bytes += chunks[i]!.length;
    this.#ctx.counters[Counter.BytesOut]! += bytes;
    const releases = this.#inFlight;
    this.#inFlight = null;
    // The callback frees pooled frames once the kernel has them and keeps the queue moving
    // when our high-water mark sits below the socket's own.
    // The callback also runs #pump when a drain is owed: the socket emits 'drain' only after a
    // write() that returned false, which the last write of a backlog may not be.
    const written = releases !== null || this.#queued > 0 || this.#needDrain ? (): void => this.#afterWrite(releases) : undefined;
    if (chunks.length === 1) {
      socket.write(chunks[0]!, written);
    } else {
      socket.cork();
      for (let i = 0; i < chunks.length - 1; i++) socket.write(chunks[i]!);
      socket.write(chunks[chunks.length - 1]!, written);
      socket.uncork();
    }
  }

  #afterWrite(releases: (() => void)[] | null): void {
    if (releases !== null) for (const release of releases) release();
    this.#pump();
  }

  #admit(message: QueuedMessage): SendStatus {
    const ctx = this.#ctx;
    const buffered = this.bufferedAmount;
    // The limit is on what piles up behind a slow reader: a message larger than it still goes
    // out on a connection with nothing buffered (as in uWS; Autobahn 9.1.5-9.2.6 echo 8-16 MiB).
    if (buffered > 0 && buffered + message.size > ctx.maxBackpressure) {
      const verdict = this.#overLimit(message, buffered);
      if (verdict !== 'queue') {
        message.release?.();
        ctx.counters[Counter.Drops]!++;
        return 'dropped';
      }
    }
    if (this.#queued > 0 || this.#compressing || this.#pendingClose !== null || buffered >= ctx.highWaterMark) {
      if (buffered >= ctx.highWaterMark) {
        ctx.counters[Counter.BackpressureEvents]!++;
        this.#needDrain = true;
      }
      (this.#queue ??= new OutboundQueue()).push(message);
      ctx.backlogged.add(this);
      return this.#compressing && buffered < ctx.highWaterMark ? 'written' : 'buffered';
    }
    this.#write(message);
    return 'written';
  }

  /** Applies the slow-client policy to a message that would pass maxBackpressure. */
  #overLimit(message: QueuedMessage, buffered: number): 'drop' | 'queue' {
    const ctx = this.#ctx;
    let decision: 'drop' | 'close' | 'queue' = ctx.slowClient === 'close' ? 'close' : 'drop';
    if (ctx.slowClient === 'custom' && ctx.app.slowClient) {
      try {
        decision = ctx.app.slowClient(this, buffered, message.priority);
      } catch (error) {
        ctx.logger.error({ err: error }, 'slowClient handler threw');
        decision = 'close';
      }
      // A custom policy may queue past the limit, but never without bound.
      if (decision === 'queue' && buffered + message.size > ctx.maxBackpressure * 4) decision = 'close';
    }
    if (decision === 'queue') return 'queue';
    if (decision === 'close') {
      ctx.logger.warn({ remote: this.remoteAddress, buffered }, 'closing slow client: backpressure limit reached');
      this.#dropQueued();
      this.#fail(CloseCode.PolicyViolation, 'slow client');
      return 'drop';
    }
    // 'drop': low-priority messages go first, then this one if it still does not fit.
    if (message.priority !== 'low') {
      const queue = this.#queue;
      if (queue !== null) ctx.counters[Counter.Drops]! += queue.dropLow(message.size, ctx.maxBackpressure - (buffered - queue.bytes));
      if (this.bufferedAmount + message.size <= ctx.maxBackpressure) return 'queue';
    }
    return 'drop';
  }

  /** Moves one message to the writer, compressing it first if it should be. */
  #write(message: QueuedMessage): void {
    if (message.frames !== null) {
      this.#writeFrames(message.frames, message.release);
      return;
    }
    const payload = message.payload!;
    const opcode = message.binary ? Opcode.Binary : Opcode.Text;
    const compression = this.#compression;
    if (!message.compress || compression === null) {
      this.#frame(opcode, payload, false);
      return;
    }
    if (compression.compressSync !== null && payload.length <= compression.syncLimit) {
      this.#frameCompressed(opcode, payload, compression.compressSync(payload));
      return;
    }
    this.#compressing = true;
    compression.compress(payload, (error, compressed) => {
      this.#compressing = false;
      // RFC 6455 §5.5.1: no data frame follows our close frame (sent meanwhile by #fail).
      if (this.#state === ReadyState.Closed || this.#closeSent) return;
      if (error || !compressed) {
        this.#ctx.logger.error({ err: error }, 'compression failed');
        this.#fail(CloseCode.InternalError, 'compression failed');
        return;
      }
      this.#frameCompressed(opcode, payload, compressed);
      this.#pump();
      if (this.#peerEnded && !this.#compressing) this.onCaughtUp();
    });
  }

  #writeFrames(frames: Buffer, release: (() => void) | null): void {
    this.#writer.raw(frames);
    if (release !== null) (this.#inFlight ??= []).push(release);
    this.#ctx.counters[Counter.MessagesOut]!++;
    this.#schedule();
  }

  #frameCompressed(opcode: Opcode, original: Buffer, compressed: Buffer): void {
    const counters = this.#ctx.counters;
    counters[Counter.DeflateBytesIn]! += original.length;
    counters[Counter.DeflateBytesOut]! += compressed.length;
    this.#frame(opcode, compressed, true);
  }

  #frame(opcode: Opcode, payload: Buffer, compressed: boolean): void {
    this.#writer.frame(opcode, payload, true, compressed);
    this.#ctx.counters[Counter.MessagesOut]!++;
    this.#schedule();
  }

  /** Writes queued messages while the socket keeps up; then the held close frame, then drain. */
  #pump(): void {
    const ctx = this.#ctx;
    while (!this.#compressing && this.#queued > 0) {
      if (this.#writer.pendingBytes + this.#socket.writableLength >= ctx.highWaterMark) return;
      this.#write(this.#queue!.shift()!);
    }
    if (this.#compressing) return;
    if (this.#pendingClose !== null) {
      const payload = this.#pendingClose;
      this.#pendingClose = null;
      this.#sendClose(payload);
      return;
    }
    if (this.#needDrain && this.bufferedAmount <= ctx.lowWaterMark && this.#state === ReadyState.Open) {
      this.#needDrain = false;
      if (ctx.app.drain) this.#call('drain', () => ctx.app.drain!(this));
    }
    if (this.#queued === 0 && !this.#needDrain) ctx.backlogged.delete(this);
  }

  #control(opcode: Opcode, payload: Buffer): void {
    // Control frames skip the queue (they are small and must not wait behind data).
    this.#writer.frame(opcode, payload, true, false);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#ctx.flusher.schedule(this);
  }

  // ---- closing --------------------------------------------------------------------------

  #sendClose(payload: Buffer): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#sentCloseCode = payload.length >= 2 ? payload.readUInt16BE(0) : CloseCode.NoStatus;
    this.#control(Opcode.Close, payload);
    if (this.#peerClose !== null) this.#endAfterFlush();
  }

  /** Fails the connection (RFC 6455 §7.1.7): close frame with the code, then close TCP. */
  #fail(code: number, reason: string): void {
    this.#reader.stop();
    if (this.#state === ReadyState.Open) this.#state = ReadyState.Closing;
    this.#dropQueued();
    this.#sendClose(encodeClosePayload(code, reason.length > 123 ? reason.slice(0, 120) : reason));
    this.#endAfterFlush();
  }

  #endAfterFlush(): void {
    this.#startCloseTimer();
    // end() queues the FIN behind whatever is written, so schedule our flush first.
    setImmediate(() => {
      this.flush();
      if (!this.#socket.destroyed) this.#socket.end();
    });
  }

  #startCloseTimer(): void {
    if (this.#closeTimer !== null) return;
    this.#closeTimer = setTimeout(() => {
      this.#ctx.logger.debug({ remote: this.remoteAddress }, 'close handshake timed out; destroying socket');
      this.#socket.destroy();
    }, this.#ctx.closeTimeoutMs);
    this.#closeTimer.unref();
  }

  #dropQueued(): void {
    this.#queue?.clear();
    this.#pendingClose = null;
  }

  #releaseInFlight(): void {
    const releases = this.#inFlight;
    this.#inFlight = null;
    if (releases !== null) for (const release of releases) release();
  }

  #peerEnd(): void {
    // The peer closed its side without (or after) a close frame: finish ours, once what it sent
    // before is processed (a message may be inflating with more frames, a close, behind it).
    // Likewise a reply being compressed goes out before our FIN.
    if (this.#reader.inflating || this.#compressing) {
      this.#peerEnded = true;
      return;
    }
    // Our reply to its close waits for a message being compressed; sending it ends our side.
    if (this.#peerClose !== null && !this.#closeSent) return;
    // Frames gathered this tick (an echo, a close reply) are written before the FIN.
    if (!this.#socket.destroyed) this.#endAfterFlush();
  }

  #socketFailed(error: Error): void {
    this.#ctx.logger.debug({ remote: this.remoteAddress, err: error.message }, 'socket error');
  }

  #socketClosed(): void {
    if (this.#state === ReadyState.Closed) return;
    this.#state = ReadyState.Closed;
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer);
    this.#reader.stop();
    this.#dropQueued();
    this.#writer.take();
    this.#releaseInFlight();
    this.#compression?.close();
    if (this.#topics !== null) for (const topic of this.#topics) this.#ctx.topics.unsubscribe(this, topic);
    this.#topics = null;
    this.#ctx.backlogged.delete(this);
    this.#ctx.counters[Counter.Connections]!--;
    this.#ctx.onClosed(this);
    const { code, reason } = this.#peerClose ?? { code: CloseCode.Abnormal, reason: '' };
    const exchanged = this.#peerClose !== null ? code : this.#closeSent ? this.#sentCloseCode : CloseCode.Abnormal;
    this.#ctx.counters[closeCounter(exchanged)]!++;
    const app = this.#ctx.app;
    if (app.close) this.#call('close', () => app.close!(this, code, reason));
  }

  /** Runs an app handler; one that throws closes only this connection, with 1011. */
  #call(name: string, handler: () => void): void {
    try {
      handler();
    } catch (error) {
      this.#ctx.logger.error({ err: error, handler: name, remote: this.remoteAddress }, `app ${name} handler threw; closing connection with 1011`);
      if (this.#state === ReadyState.Open) this.#fail(CloseCode.InternalError, 'internal error');
    }
  }
}
