/**
 * The upstream leg of a proxied connection in message mode: a client-role WebSocket (masked
 * frames out, RFC 6455 §5.3) on the socket the dialer upgraded, built from the same parts as
 * the server's connections: MessageReader in, MessageEncoder and FrameSink out (one writev per
 * turn with every other connection of the worker), CloseHandshake for the closing. It has no
 * app: it reports messages, its drain and its end to its owner (proxy-link.ts), and answers
 * pings itself (each leg keeps its own liveness).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ReadyState } from '../shared/app.ts';
import type { ProtocolError } from '../shared/errors.ts';
import type { ByteArena } from '../shared/frame-writer.ts';
import { MaskKeySource } from '../shared/mask.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { MessageEncoder } from '../shared/message-encoder.ts';
import type { EncoderOps } from '../shared/message-encoder.ts';
import { MessageReader } from '../shared/message-reader.ts';
import type { MessageEvents } from '../shared/message-reader.ts';
import { Opcode } from '../shared/opcodes.ts';
import { FrameSink } from '../runtime/frame-flush.ts';
import type { FlushHook, FlushScheduler } from '../runtime/frame-flush.ts';
import { CloseHandshake } from './close-handshake.ts';
import type { CloseOps, CloseSettings } from './close-handshake.ts';
import { rehomeForReading } from './socket-rehome.ts';
import type { ReadBuffer } from './socket-rehome.ts';

/** What an upstream leg tells its owner, as one table for every leg (the leg passes its owner). */
export interface UpstreamEvents<O> {
  /** `data` is the leg's own (valid after the call). */
  message(owner: O, data: Buffer, isBinary: boolean): void;
  /** Buffered data fell to the low water mark after send() said to stop. */
  drain(owner: O): void;
  /** The upstream's close frame arrived (RFC 6455 §5.5.1); the leg answers it itself. */
  closing(owner: O, code: number, reason: string): void;
  /** The socket closed: `code` is the upstream's close code, or 1006 when it sent none. */
  closed(owner: O, code: number, reason: string): void;
}

export interface UpstreamSettings {
  readonly arena: ByteArena;
  readonly scheduler: FlushScheduler;
  readonly maxPayloadLength: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly close: CloseSettings;
  readonly logger: Logger;
}

/** Every upstream leg of the worker masks with keys from one pool (crypto.randomFillSync in bulk). */
const maskKeys = new MaskKeySource();

/** Upstream legs read into one buffer of their own, as server connections do (socket-rehome.ts). */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const kLeg = Symbol('shardws.upstreamLeg');
type LegSocket = Duplex & { [kLeg]: UpstreamConnection<unknown> };

interface Pending {
  readonly opcode: Opcode;
  readonly payload: Buffer;
  readonly compress: boolean;
}

export class UpstreamConnection<O> {
  readonly #socket: Duplex;
  readonly #settings: UpstreamSettings;
  readonly #events: UpstreamEvents<O>;
  readonly #owner: O;
  readonly #reader: MessageReader<UpstreamConnection<O>>;
  readonly #sink: FrameSink<UpstreamConnection<O>>;
  readonly #compression: MessageCompression | null;
  readonly #encoder: MessageEncoder<UpstreamConnection<O>> | null;
  /** Messages held behind one compressing on zlib's pool: they keep their order. */
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #close: CloseHandshake<UpstreamConnection<O>> | null = null;
  #needDrain = false;
  #readerStopped = false;
  #held = false;
  #ended = false;
  readonly #early: readonly Buffer[];

  /**
   * Takes over `socket` (just upgraded by the dialer) with the bytes that came with the 101;
   * nothing is read or reported before start().
   */
  constructor(socket: Socket, head: Buffer, compression: MessageCompression | null, events: UpstreamEvents<O>, owner: O, settings: UpstreamSettings) {
    // A plain TCP socket moves to one that reads into the legs' buffer; TLS stays as it is.
    const rehomed = rehomeForReading(socket, UpstreamConnection.#reads);
    const live: Duplex = rehomed?.socket ?? socket;
    this.#early = [head, ...(rehomed?.pending ?? [])];
    this.#socket = live;
    this.#settings = settings;
    this.#events = events;
    this.#owner = owner;
    this.#compression = compression;
    (live as LegSocket)[kLeg] = this as UpstreamConnection<unknown>;
    (live as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    (live as Socket).setNoDelay?.(true);
    this.#sink = new FrameSink<UpstreamConnection<O>>(settings.arena, maskKeys, settings.scheduler, live, UpstreamConnection.#flushing as FlushHook<UpstreamConnection<O>>, this);
    this.#encoder = compression === null ? null : new MessageEncoder(this.#sink, compression, UpstreamConnection.#encoderOps as EncoderOps<UpstreamConnection<O>>, this, null);
    this.#reader = new MessageReader(UpstreamConnection.#readerEvents as MessageEvents<UpstreamConnection<O>>, this, {
      role: 'client',
      maxMessageSize: settings.maxPayloadLength,
      inflater: compression?.inflater ?? null,
    });
    live.pause();
    if (rehomed === null) live.on('data', UpstreamConnection.#onData);
    live.on('end', UpstreamConnection.#onEnd);
    live.on('close', UpstreamConnection.#onClose);
    live.on('error', UpstreamConnection.#onError);
    live.on('drain', UpstreamConnection.#onDrain);
  }

  /** Reads what came with the 101, then the socket. */
  start(): void {
    for (const chunk of this.#early) if (chunk.length > 0 && this.readyState !== ReadyState.Closed) this.#reader.push(chunk);
    if (!this.#held) this.#socket.resume();
  }

  get readyState(): ReadyState {
    return this.#ended ? ReadyState.Closed : this.#close === null ? ReadyState.Open : this.#close.state;
  }

  get bufferedAmount(): number {
    return this.#sink.pendingBytes + this.#pendingBytes + this.#socket.writableLength;
  }

  /** Sends one message; false when the leg is at its high-water mark (wait for `drain`). */
  send(payload: Buffer, binary: boolean): boolean {
    if (this.readyState !== ReadyState.Open) return true;
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const compress = this.#compression !== null && compressionWanted(this.#compression.threshold, payload.length, undefined);
    if (this.#pending.length > 0 || this.#encoder?.busy === true) {
      this.#pending.push({ opcode, payload, compress });
      this.#pendingBytes += payload.length;
    } else {
      this.#sendNow(opcode, payload, compress);
    }
    if (this.bufferedAmount < this.#settings.highWaterMark) return true;
    this.#needDrain = true;
    return false;
  }

  /** Stops reading the upstream (true) while the client leg is behind, or goes on (false). */
  hold(held: boolean): void {
    this.#held = held;
    if (held) this.#socket.pause();
    else if (!this.#readerStopped) this.#socket.resume();
  }

  /** Starts the closing handshake (RFC 6455 §7.1.2); messages sent before go first. */
  close(code: number, reason: string): void {
    if (this.readyState !== ReadyState.Open) return;
    this.#closing().start(code, reason);
  }

  /** Destroys the socket without a close handshake. */
  terminate(): void {
    this.#closing().terminate();
  }

  #sendNow(opcode: Opcode, payload: Buffer, compress: boolean): void {
    if (compress && this.#encoder !== null) this.#encoder.encode(opcode, payload);
    else this.#sink.frame(opcode, payload, true, false);
  }

  #pump(): void {
    while (this.#pending.length > 0 && this.#encoder?.busy !== true) {
      const item = this.#pending.shift()!;
      this.#pendingBytes -= item.payload.length;
      this.#sendNow(item.opcode, item.payload, item.compress);
    }
    if (this.#encoder?.busy === true) return;
    if (this.#close !== null && this.#close.sendHeld()) return;
    if (this.#needDrain && this.bufferedAmount <= this.#settings.lowWaterMark && this.readyState === ReadyState.Open) {
      this.#needDrain = false;
      this.#events.drain(this.#owner);
    }
  }

  static readonly #flushing: FlushHook<UpstreamConnection<unknown>> = (leg) => {
    // As a server connection's flush: the socket's own 'drain' comes only past its own mark,
    // so a flush that leaves it at or above ours asks for a callback.
    if (!leg.#needDrain && leg.#pending.length === 0) return undefined;
    return () => leg.#pump();
  };

  static readonly #encoderOps: EncoderOps<UpstreamConnection<unknown>> = {
    acceptsData: (leg) => leg.readyState !== ReadyState.Closed && !(leg.#close?.closeSent ?? false),
    compressed(leg, error) {
      if (!this.acceptsData(leg)) return;
      if (error !== null) {
        leg.#settings.logger.error({ err: error }, 'compression for the upstream failed');
        leg.#closing().fail(1011, 'compression failed');
        return;
      }
      leg.#pump();
      leg.#close?.caughtUp();
    },
  };

  // ---- reading ----------------------------------------------------------------------------

  static readonly #reads: ReadBuffer = {
    buffer: READ_BUFFER,
    callback(this: Socket, bytes: number, buffer: Buffer): boolean {
      (this as unknown as LegSocket)[kLeg].#reader.push(buffer.subarray(0, bytes), true);
      return true;
    },
  };

  static #onData(this: LegSocket, chunk: Buffer): void {
    this[kLeg].#reader.push(chunk);
  }
  static #onEnd(this: LegSocket): void {
    this[kLeg].#closing().peerEnded();
  }
  static #onClose(this: LegSocket): void {
    this[kLeg].#socketClosed();
  }
  static #onError(this: LegSocket, error: Error): void {
    this[kLeg].#settings.logger.debug({ err: error.message }, 'upstream socket error');
  }
  static #onDrain(this: LegSocket): void {
    this[kLeg].#pump();
  }

  static readonly #readerEvents: MessageEvents<UpstreamConnection<unknown>> = {
    message(leg, data, isBinary) {
      if (leg.readyState !== ReadyState.Open) return;
      // A view of the read buffer is overwritten by the next read; the owner sends it later.
      leg.#events.message(leg.#owner, leg.#reader.transientMessages ? Buffer.from(data) : data, isBinary);
    },
    ping(leg, payload) {
      // RFC 6455 §5.5.2: a pong with the same data, unless closing.
      if (leg.readyState === ReadyState.Open) leg.#sink.frame(Opcode.Pong, payload, true, false);
    },
    pong() {},
    close(leg, code, reason) {
      const wasOpen = leg.readyState === ReadyState.Open;
      leg.#closing().peerClosed(code, reason);
      if (wasOpen) leg.#events.closing(leg.#owner, code, reason);
    },
    error(leg, error: ProtocolError) {
      leg.#settings.logger.warn({ code: error.code, closeCode: error.closeCode }, `closing the upstream connection: ${error.message}`);
      leg.#closing().fail(error.closeCode, error.message);
    },
    readPressure(leg, stop) {
      leg.#readerStopped = stop;
      if (stop) leg.#socket.pause();
      else if (!leg.#held) leg.#socket.resume();
    },
    caughtUp: (leg) => leg.#close?.caughtUp(),
  };

  // ---- closing ----------------------------------------------------------------------------

  #closing(): CloseHandshake<UpstreamConnection<O>> {
    return (this.#close ??= new CloseHandshake(UpstreamConnection.#closeOps as CloseOps<UpstreamConnection<O>>, this, this.#settings.close));
  }

  static readonly #closeOps: CloseOps<UpstreamConnection<unknown>> = {
    socket: (leg) => leg.#socket,
    busy: (leg) => leg.#reader.inflating || (leg.#encoder !== null && leg.#encoder.busy),
    backlogged: (leg) => leg.#pending.length > 0 || (leg.#encoder !== null && leg.#encoder.busy),
    dropQueued: (leg) => {
      leg.#pending = [];
      leg.#pendingBytes = 0;
    },
    sendCloseFrame: (leg, payload) => leg.#sink.frame(Opcode.Close, payload, true, false),
    stopReading: (leg) => leg.#reader.stop(),
    flush: (leg) => {
      leg.#sink.flush();
    },
  };

  #socketClosed(): void {
    if (this.#ended) return;
    const outcome = this.#closing().socketClosed();
    this.#ended = true;
    this.#reader.stop();
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#sink.take();
    this.#compression?.close();
    this.#events.closed(this.#owner, outcome.code, outcome.reason);
  }
}
