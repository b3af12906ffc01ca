/**
 * BenchConnection: the load generator's client connection, lean where the browser-style client
 * (src/client/websocket.ts) is friendly. No events, no strings, no per-message objects: bytes in
 * go socket → MessageReader (role client) → listener.message(connection, data, isBinary); bytes
 * out go into this thread's ByteArena through a FrameSink and leave once per event-loop turn,
 * every connection written in that turn with one writev (runtime/frame-flush.ts, as the server's).
 */
import { arrival, nowMicros } from './clock.ts';
import { CloseCode, encodeClosePayload } from '../../src/shared/close.ts';
import type { ProtocolError } from '../../src/shared/errors.ts';
import { ByteArena } from '../../src/shared/frame-writer.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import type { MessageCompression } from '../../src/shared/message-compression.ts';
import { MessageEncoder } from '../../src/shared/message-encoder.ts';
import type { EncoderOps } from '../../src/shared/message-encoder.ts';
import { MessageReader } from '../../src/shared/message-reader.ts';
import type { MessageEvents } from '../../src/shared/message-reader.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
import { FlushScheduler, FrameSink } from '../../src/runtime/frame-flush.ts';
import type { FrameTransport } from '../../src/runtime/frame-transport.ts';
import type { OpenedSocket } from './client-handshake.ts';
import type { PreparedFrame } from './prepared-frame.ts';

export interface ConnectionListener {
  message(connection: BenchConnection, data: Buffer, isBinary: boolean): void;
  /** The connection ended; `problem` says why when we did not end it ourselves. */
  closed(connection: BenchConnection, problem: string | null): void;
}

export interface ConnectionOptions {
  /**
   * 'client' normally. 'server' for --raw-echo: a TCP echo sends our own masked frames back,
   * and a parser in the server role is the one that expects (and unmasks) masked frames.
   */
  readonly readerRole: 'client' | 'server';
  readonly maxMessageSize: number;
  /** Fresh keys per frame (default) or one fixed key (--fast-mask). */
  readonly maskKeys: MaskKeySource;
}

/** Every connection of a thread packs its frames into one arena (as the server's workers do). */
const arena = new ByteArena(256 * 1024);
/** Fresh RFC 6455 §5.3 keys for the whole thread, refilled from crypto a block at a time. */
export const threadMaskKeys = new MaskKeySource(64 * 1024);

/** Connections with frames waiting, flushed together after this turn's reads. */
const scheduler = new FlushScheduler();

const CLOSE_GRACE_MS = 1000;

export class BenchConnection {
  readonly id: number;
  readonly socket: FrameTransport;
  readonly compression: MessageCompression | null;
  readonly #reader: MessageReader<BenchConnection>;
  readonly #sink: FrameSink;
  readonly #encoder: MessageEncoder<BenchConnection> | null;
  /** Messages sent while one compresses on zlib's pool (a server that refused client_no_context_takeover). */
  readonly #pending: { opcode: Opcode; payload: Buffer }[] = [];
  readonly #listener: ConnectionListener;
  #closing = false;
  #ended = false;
  #closed: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;
  #reported = false;

  // Per-connection state of the mode driving it (thread-task.ts).
  /** Next sequence number to send. */
  sent = 0;
  /** Next sequence number expected. */
  expected = 0;
  /** --fast-mask: one pre-masked frame per message that may be in flight. */
  frames: readonly PreparedFrame[] | null = null;

  constructor(id: number, opened: OpenedSocket, listener: ConnectionListener, options: ConnectionOptions) {
    this.id = id;
    this.socket = opened.socket;
    this.compression = opened.compression;
    this.#listener = listener;
    this.#sink = new FrameSink(arena, options.maskKeys, scheduler, opened.socket, null, null);
    this.#encoder = opened.compression === null ? null : new MessageEncoder(this.#sink, opened.compression, BenchConnection.#encoderOps, this, null);
    this.#reader = new MessageReader(BenchConnection.#readerEvents, this, {
      role: options.readerRole,
      maxMessageSize: options.maxMessageSize,
      inflater: opened.compression?.inflater ?? null,
    });
    const socket = this.socket;
    // Reads land in the thread's shared buffer: messages are checked while their event runs,
    // and the reader copies whatever it keeps (transient pushes).
    opened.reads.handle = (chunk: Buffer) => {
      arrival.micros = nowMicros();
      this.#reader.push(chunk, true);
    };
    socket.on('error', (error: Error) => this.#end(`socket error: ${error.message}`));
    socket.on('end', () => socket.end());
    socket.on('close', () => this.#end('connection closed by the server'));
    if (opened.head.length > 0) this.#reader.push(opened.head);
  }

  get open(): boolean {
    return !this.#closing && !this.#ended;
  }

  /** Sends one message; `payload` may be reused by the caller as soon as this returns. */
  send(payload: Buffer, binary: boolean): void {
    if (!this.open) return;
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const encoder = this.#encoder;
    if (encoder === null) this.#sink.frame(opcode, payload, true, false);
    // Compressed on zlib's pool, the payload must outlive this call: the queued ones are copies.
    else if (encoder.busy || this.#pending.length > 0) this.#pending.push({ opcode, payload: Buffer.from(payload) });
    else encoder.encode(opcode, this.#compressesOnThread(payload) ? payload : Buffer.from(payload));
  }

  /** Whether `payload` compresses synchronously (else it goes to zlib's pool and must outlive send()). */
  #compressesOnThread(payload: Buffer): boolean {
    const compression = this.compression!;
    return compression.compressSync !== null && payload.length <= compression.syncLimit;
  }

  /** Sends bytes that already form a complete masked frame (a PreparedFrame). */
  sendFrame(frame: Buffer): void {
    if (!this.open) return;
    this.#sink.raw(frame);
  }

  flush(): void {
    if (!this.#ended) this.#sink.flush();
  }

  static readonly #encoderOps: EncoderOps<BenchConnection> = {
    acceptsData: (connection) => connection.open,
    compressed(connection, error) {
      if (error !== null) {
        connection.#fail(`compression failed: ${error.message}`);
        return;
      }
      while (connection.#pending.length > 0 && !connection.#encoder!.busy) {
        const next = connection.#pending.shift()!;
        connection.#encoder!.encode(next.opcode, next.payload);
      }
    },
  };

  /**
   * Starts the closing handshake (1000) and resolves once TCP is closed, destroying the socket
   * if the server has not closed it within a second: the run is over, nobody waits longer.
   */
  close(): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    this.#closed = new Promise<void>((resolve) => {
      if (this.#ended) return resolve();
      this.#resolveClosed = resolve;
    });
    if (!this.#ended) {
      this.#closing = true;
      this.#sink.frame(Opcode.Close, encodeClosePayload(CloseCode.Normal), true, false);
      this.flush();
      this.socket.end();
      setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    }
    return this.#closed;
  }

  static readonly #readerEvents: MessageEvents<BenchConnection> = {
    message(connection, data, isBinary) {
      if (!connection.#ended) connection.#listener.message(connection, data, isBinary);
    },
    ping(connection, payload) {
      if (connection.open) connection.#sink.frame(Opcode.Pong, payload, true, false);
    },
    pong() {},
    close(connection, code, reason) {
      if (connection.#closing) return; // the answer to our close
      connection.#fail(`server sent close ${code}${reason === '' ? '' : ` (${reason})`}`, code === CloseCode.NoStatus ? undefined : code);
    },
    error: (connection, error: ProtocolError) => connection.#fail(`protocol error ${error.code}: ${error.message}`, error.closeCode),
    readPressure(connection, stop) {
      if (stop) connection.socket.pause();
      else connection.socket.resume();
    },
    caughtUp() {},
  };

  // ---- internals -----------------------------------------------------------------------

  /** Reports the problem, answers with a close frame when it can, and ends the connection. */
  #fail(problem: string, closeCode?: number): void {
    if (this.#ended || this.#closing) return;
    this.#closing = true;
    this.#sink.frame(Opcode.Close, encodeClosePayload(closeCode ?? CloseCode.Normal), true, false);
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    this.#report(problem);
  }

  #end(problem: string): void {
    const expected = this.#closing;
    if (!this.#ended) {
      this.#ended = true;
      this.#reader.stop();
      this.compression?.close();
      this.#sink.take();
      this.#pending.length = 0;
      this.socket.destroy();
    }
    this.#report(expected ? null : problem);
    this.#resolveClosed?.();
    this.#resolveClosed = null;
  }

  #report(problem: string | null): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#listener.closed(this, problem);
  }
}
