/**
 * BenchConnection: the load generator's client connection, lean where the browser-style client
 * (src/client/websocket.ts) is friendly. No events, no strings, no per-message objects: bytes in
 * go socket → MessageReader (role client) → listener.message(connection, data, isBinary); bytes
 * out go into this thread's ByteArena through a FrameWriter and leave once per event-loop turn,
 * every connection written in that turn with one writev.
 */
import type { Socket } from 'node:net';
import { CloseCode, encodeClosePayload } from '../../src/shared/close.ts';
import type { ProtocolError } from '../../src/shared/errors.ts';
import { ByteArena, FrameWriter } from '../../src/shared/frame-writer.ts';
import { MaskKeySource } from '../../src/shared/mask.ts';
import type { MessageCompression } from '../../src/shared/message-compression.ts';
import type { MessageHandler } from '../../src/shared/message-reader.ts';
import { MessageReader } from '../../src/shared/message-reader.ts';
import { Opcode } from '../../src/shared/opcodes.ts';
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

/** Connections with frames waiting, flushed together after this turn's reads (setImmediate). */
let dirty: BenchConnection[] = [];
let spare: BenchConnection[] = [];
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  const batch = dirty;
  dirty = spare;
  for (let i = 0; i < batch.length; i++) batch[i]!.flush();
  batch.length = 0;
  spare = batch;
}

const CLOSE_GRACE_MS = 1000;

export class BenchConnection implements MessageHandler {
  readonly id: number;
  readonly socket: Socket;
  readonly compression: MessageCompression | null;
  readonly #reader: MessageReader;
  readonly #writer: FrameWriter;
  readonly #listener: ConnectionListener;
  #scheduled = false;
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
    this.#writer = new FrameWriter(arena, options.maskKeys);
    this.#reader = new MessageReader(this, {
      role: options.readerRole,
      maxMessageSize: options.maxMessageSize,
      inflater: opened.compression?.inflater ?? null,
    });
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => this.#reader.push(chunk));
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
    const compression = this.compression;
    if (compression === null) {
      this.#writer.frame(opcode, payload, true, false);
    } else if (compression.compressSync !== null) {
      this.#writer.frame(opcode, compression.compressSync(payload), true, true);
    } else {
      // A server that refused client_no_context_takeover: zlib's pool, completed in order.
      compression.compress(Buffer.from(payload), (error, out) => {
        if (error || out === undefined) return this.#fail(`compression failed: ${error?.message ?? 'no output'}`);
        if (!this.open) return;
        this.#writer.frame(opcode, out, true, true);
        this.#schedule();
      });
      return;
    }
    this.#schedule();
  }

  /** Sends bytes that already form a complete masked frame (a PreparedFrame). */
  sendFrame(frame: Buffer): void {
    if (!this.open) return;
    this.#writer.raw(frame);
    this.#schedule();
  }

  flush(): void {
    this.#scheduled = false;
    const chunks = this.#writer.take();
    if (chunks === null || this.#ended) return;
    const socket = this.socket;
    if (chunks.length === 1) {
      socket.write(chunks[0]!);
      return;
    }
    socket.cork();
    for (let i = 0; i < chunks.length; i++) socket.write(chunks[i]!);
    socket.uncork();
  }

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
      this.#writer.frame(Opcode.Close, encodeClosePayload(CloseCode.Normal), true, false);
      this.flush();
      this.socket.end();
      setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    }
    return this.#closed;
  }

  // ---- MessageHandler ------------------------------------------------------------------

  onMessage(data: Buffer, isBinary: boolean): void {
    if (!this.#ended) this.#listener.message(this, data, isBinary);
  }

  onPing(payload: Buffer): void {
    if (!this.open) return;
    this.#writer.frame(Opcode.Pong, payload, true, false);
    this.#schedule();
  }

  onPong(): void {}

  onClose(code: number, reason: string): void {
    if (this.#closing) return; // the answer to our close
    this.#fail(`server sent close ${code}${reason === '' ? '' : ` (${reason})`}`, code === CloseCode.NoStatus ? undefined : code);
  }

  onError(error: ProtocolError): void {
    this.#fail(`protocol error ${error.code}: ${error.message}`, error.closeCode);
  }

  onReadPressure(stop: boolean): void {
    if (stop) this.socket.pause();
    else this.socket.resume();
  }

  // ---- internals -----------------------------------------------------------------------

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Reports the problem, answers with a close frame when it can, and ends the connection. */
  #fail(problem: string, closeCode?: number): void {
    if (this.#ended || this.#closing) return;
    this.#closing = true;
    this.#writer.frame(Opcode.Close, encodeClosePayload(closeCode ?? CloseCode.Normal), true, false);
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
      this.#writer.take();
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
