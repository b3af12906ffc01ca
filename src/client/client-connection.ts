/**
 * One open client connection, from the 101 to the socket's close: masked frames (RFC 6455 §5.3)
 * batched into one write per tick, messages compressed in order, the closing handshake
 * (§7.1: the server closes TCP first) and its timer. It reports to its owner through one
 * table of functions; the owner (WebSocket) turns the reports into events.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode, encodeClosePayload } from '../shared/close.ts';
import type { ProtocolError } from '../shared/errors.ts';
import { ByteArena } from '../shared/frame-writer.ts';
import { MaskKeySource } from '../shared/mask.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { MessageEncoder } from '../shared/message-encoder.ts';
import type { EncoderOps } from '../shared/message-encoder.ts';
import { MessageReader } from '../shared/message-reader.ts';
import type { MessageEvents } from '../shared/message-reader.ts';
import { Opcode } from '../shared/opcodes.ts';
import { FlushScheduler, FrameSink } from '../runtime/frame-flush.ts';
import { abortTransport } from '../runtime/frame-transport.ts';

/** Every client of a thread packs its frames into one arena and flushes once per tick. */
const arena = new ByteArena();
const maskKeys = new MaskKeySource();
const scheduler = new FlushScheduler();

const EMPTY = Buffer.alloc(0);

/** What a connection reports; `closed` comes exactly once, last. */
export interface ConnectionEvents<O> {
  message(owner: O, data: Buffer, isBinary: boolean): void;
  ping(owner: O, data: Buffer): void;
  pong(owner: O, data: Buffer): void;
  error(owner: O, error: Error): void;
  closed(owner: O, code: number, reason: string, wasClean: boolean): void;
}

export interface ConnectionLimits {
  /** Largest message accepted, after inflation. */
  readonly maxPayloadLength: number;
  /** Seconds to wait for the server's TCP close after the close handshake. */
  readonly closeTimeout: number;
}

/** readyState values while a connection exists (WebSocket.OPEN, CLOSING, CLOSED). */
export type ConnectionState = 1 | 2 | 3;

interface PendingMessage {
  /** Null while a Blob's bytes are being read: the messages after it wait. */
  payload: Buffer | null;
  readonly blob: Blob | null;
  readonly opcode: Opcode;
}

export class ClientConnection<O> {
  #state: ConnectionState = 1;
  readonly #socket: Duplex;
  readonly #reader: MessageReader<ClientConnection<O>>;
  readonly #sink = new FrameSink(arena, maskKeys, scheduler, null, null, null);
  readonly #compression: MessageCompression | null;
  /** Present when permessage-deflate was negotiated. */
  readonly #encoder: MessageEncoder<ClientConnection<O>> | null;
  /** Messages sent while an earlier one compresses off-thread or a Blob is read: they keep their order. */
  readonly #pending: PendingMessage[] = [];
  /** The server's FIN came while a message inflated: our side ends once it is processed. */
  #peerEnded = false;
  #closeSent = false;
  /** close() was called with messages still queued: the close frame follows them. */
  #closeAfterPending: Buffer | null = null;
  #closeReceived: { code: number; reason: string } | null = null;
  #closeTimer: NodeJS.Timeout | null = null;
  readonly #limits: ConnectionLimits;
  readonly #events: ConnectionEvents<O>;
  readonly #owner: O;

  constructor(socket: Duplex, compression: MessageCompression | null, limits: ConnectionLimits, events: ConnectionEvents<O>, owner: O) {
    this.#socket = socket;
    this.#compression = compression;
    this.#limits = limits;
    this.#events = events;
    this.#owner = owner;
    this.#sink.attach(socket);
    this.#encoder = compression === null ? null : new MessageEncoder(this.#sink, compression, ClientConnection.#encoderOps as EncoderOps<ClientConnection<O>>, this, null);
    (socket as Socket).setNoDelay?.(true);
    const reader = new MessageReader(ClientConnection.#readerEvents as MessageEvents<ClientConnection<O>>, this, {
      role: 'client',
      maxMessageSize: limits.maxPayloadLength,
      inflater: compression?.inflater ?? null,
    });
    this.#reader = reader;
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('close', () => this.#onSocketClose());
    socket.on('error', (error: Error) => this.#events.error(this.#owner, error));
    // Frames that arrived with the server's FIN are still read (they may wait behind an
    // inflation); our side ends once they are.
    (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    socket.on('end', () => {
      if (reader.inflating) this.#peerEnded = true;
      else this.#endSocket();
    });
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get bufferedAmount(): number {
    let pending = 0;
    for (const item of this.#pending) pending += item.payload?.length ?? item.blob!.size;
    return this.#sink.pendingBytes + pending + this.#socket.writableLength;
  }

  /** Reads bytes that arrived before the socket was handed over (with the 101). */
  read(head: Buffer): void {
    if (head.length > 0) this.#reader.push(head);
  }

  send(opcode: Opcode, payload: Buffer): void {
    if (this.#state !== 1) return;
    if (this.#pending.length > 0 || this.#encoder?.busy === true) this.#pending.push({ payload, blob: null, opcode });
    else this.#sendNow(opcode, payload);
  }

  /** A Blob is read asynchronously (Node has no synchronous read); what is sent after it waits. */
  sendBlob(blob: Blob): void {
    if (this.#state !== 1) return;
    const item: PendingMessage = { payload: null, blob, opcode: Opcode.Binary };
    this.#pending.push(item);
    blob.arrayBuffer().then(
      (bytes) => {
        item.payload = Buffer.from(bytes);
        this.#pump();
      },
      (error: Error) => {
        this.#events.error(this.#owner, error);
        abortTransport(this.#socket);
      },
    );
  }

  /** RFC 6455 §5.5: control frames may go between the frames of a message; no wait behind the queue. */
  ping(payload: Buffer): void {
    if (this.#state === 1) this.#sink.frame(Opcode.Ping, payload, true, false);
  }

  /** Starts the closing handshake with `payload` (an encoded close payload). */
  close(payload: Buffer): void {
    if (this.#state !== 1) return;
    this.#state = 2;
    // Messages sent before close() go out first (one may still be compressing), then the close.
    if (this.#pending.length > 0 || this.#encoder?.busy === true) this.#closeAfterPending = payload;
    else this.#sendClose(payload);
  }

  /** Ends the connection without a close handshake: the socket destroyed, or an HTTP/2 stream reset with CANCEL (RFC 8441 §5). */
  terminate(): void {
    abortTransport(this.#socket);
  }

  // ---- receive --------------------------------------------------------------------------

  static readonly #readerEvents: MessageEvents<ClientConnection<unknown>> = {
    message(connection, data, isBinary) {
      if (connection.#state === 1) connection.#events.message(connection.#owner, data, isBinary);
    },
    ping(connection, payload) {
      if (connection.#state !== 1) return;
      connection.#sink.frame(Opcode.Pong, payload, true, false);
      connection.#events.ping(connection.#owner, payload);
    },
    pong(connection, payload) {
      if (connection.#state === 1) connection.#events.pong(connection.#owner, payload);
    },
    close: (connection, code, reason) => connection.#onCloseFrame(code, reason),
    error: (connection, error) => connection.#onProtocolError(error),
    readPressure(connection, stop) {
      if (stop) connection.#socket.pause();
      else connection.#socket.resume();
    },
    // The server's FIN came while a message inflated: end our side once it is processed.
    caughtUp(connection) {
      if (connection.#peerEnded) connection.#endSocket();
    },
  };

  #onCloseFrame(code: number, reason: string): void {
    this.#closeReceived = { code, reason };
    if (this.#state === 1) {
      this.#state = 2;
      this.#sendClose(code === CloseCode.NoStatus ? EMPTY : encodeClosePayload(code));
    }
    // RFC 6455 §7.1.1: the server closes TCP first; we wait for it, within the close timeout.
    this.#startCloseTimer();
  }

  #onProtocolError(error: ProtocolError): void {
    this.#events.error(this.#owner, error);
    if (this.#state !== 3) {
      this.#state = 2;
      this.#sendClose(encodeClosePayload(error.closeCode));
      this.#startCloseTimer();
    }
  }

  #onSocketClose(): void {
    if (this.#state === 3) return;
    this.#state = 3;
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer);
    this.#reader.stop();
    this.#compression?.close();
    this.#pending.length = 0;
    this.#sink.take();
    const received = this.#closeReceived;
    const wasClean = received !== null && this.#closeSent;
    this.#events.closed(this.#owner, received?.code ?? CloseCode.Abnormal, received?.reason ?? '', wasClean);
  }

  // ---- send -----------------------------------------------------------------------------

  #sendNow(opcode: Opcode, payload: Buffer): void {
    if (this.#encoder !== null && compressionWanted(this.#compression!.threshold, payload.length, undefined)) this.#encoder.encode(opcode, payload);
    else this.#sink.frame(opcode, payload, true, false);
  }

  /** Sends the messages held behind a compression, then a close() that waited for them. */
  #pump(): void {
    while (this.#pending.length > 0 && this.#pending[0]!.payload !== null && this.#encoder?.busy !== true) {
      const item = this.#pending.shift()!;
      this.#sendNow(item.opcode, item.payload!);
    }
    if (this.#pending.length === 0 && this.#encoder?.busy !== true && this.#closeAfterPending !== null) {
      const payload = this.#closeAfterPending;
      this.#closeAfterPending = null;
      this.#sendClose(payload);
    }
  }

  static readonly #encoderOps: EncoderOps<ClientConnection<unknown>> = {
    acceptsData: (connection) => !connection.#closeSent,
    compressed(connection, error) {
      if (error !== null) {
        connection.#events.error(connection.#owner, error);
        abortTransport(connection.#socket);
        return;
      }
      connection.#pump();
    },
  };

  #sendClose(payload: Buffer): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#pending.length = 0;
    this.#sink.frame(Opcode.Close, payload, true, false);
    this.#startCloseTimer();
  }

  /** Ends our side after writing what this tick gathered (a close reply must precede the FIN). */
  #endSocket(): void {
    if (this.#socket.destroyed) return;
    this.#sink.flush();
    this.#socket.end();
  }

  #startCloseTimer(): void {
    if (this.#closeTimer !== null) return;
    this.#closeTimer = setTimeout(() => abortTransport(this.#socket), this.#limits.closeTimeout * 1000);
    this.#closeTimer.unref();
  }
}
