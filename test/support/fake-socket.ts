/**
 * Fakes for the worker-side unit tests: a socket driven by hand instead of a TCP connection, a
 * reader for the frames a server wrote to it, a logger that records, and a way to let the
 * event loop run the per-turn flushes (runtime/frame-flush.ts writes in setImmediate).
 */
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { FrameParser } from '../../src/shared/frame-parser.ts';
import { Opcode } from '../../src/shared/opcodes.ts';

/**
 * A Duplex standing in for a net.Socket. What the code under test writes lands in `writes`, one
 * entry per call that reached the "kernel" (a corked batch is one `_writev` call, so one entry).
 * `stall()` makes it a peer that stopped reading: writes stay in flight, `writableLength` grows,
 * and their callbacks wait for `unstall()` (or `completeOne()`); destroying it completes them as
 * net.Socket does.
 * The peer's side: `receive()` delivers bytes as a 'data' event (synchronously), `peerEnd()`
 * sends its FIN.
 */
export class FakeSocket extends Duplex {
  /** Every batch of chunks that reached the kernel, in order. */
  readonly writes: Buffer[][] = [];
  #stalled = false;
  #held: ((error?: Error | null) => void)[] = [];

  /** `highWaterMark`: the socket's own write buffer limit (net.Socket: 64 KiB). */
  constructor(options: { highWaterMark?: number } = {}) {
    super({ allowHalfOpen: true, writableHighWaterMark: options.highWaterMark ?? 64 * 1024 });
  }

  /** Everything written so far, as one buffer. */
  get output(): Buffer {
    return Buffer.concat(this.writes.flat());
  }

  /** Stops completing writes, like a peer whose receive window is full. */
  stall(): void {
    this.#stalled = true;
  }

  /** Completes the oldest write held, and stays stalled (the next write waits in turn). */
  completeOne(): void {
    this.#held.shift()?.();
  }

  /** Completes the writes held since `stall()`, and later writes at once. */
  unstall(): void {
    this.#stalled = false;
    for (const callback of this.#held.splice(0)) callback();
  }

  /** Bytes from the peer. */
  receive(bytes: Buffer): void {
    this.emit('data', bytes);
  }

  /** The peer's FIN ('end' follows on a later tick). */
  peerEnd(): void {
    this.push(null);
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.writes.push(chunks.map((c) => c.chunk));
    if (this.#stalled) this.#held.push(callback);
    else callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // net.Socket completes writes still in flight when its handle closes.
    for (const held of this.#held.splice(0)) held(null);
    callback(error);
  }
}

/** A frame as the client end reads it. */
export interface WireFrame {
  readonly opcode: Opcode;
  readonly fin: boolean;
  readonly rsv1: boolean;
  readonly payload: Buffer;
}

/** Parses what a server wrote (unmasked frames; RSV1 allowed) into frames; fails on anything malformed. */
export function readFrames(bytes: Buffer): WireFrame[] {
  const frames: WireFrame[] = [];
  new FrameParser(
    {
      // `compressed` is the RSV1 bit of a message's first frame (the parser refuses it anywhere else).
      onFrame: (opcode, fin, compressed, payload) =>
        frames.push({ opcode, fin, rsv1: compressed && opcode !== Opcode.Continuation, payload: Buffer.from(payload) }),
      onError(error) {
        throw error;
      },
    },
    { role: 'client', maxMessageSize: 1 << 30, rsv1Allowed: true },
  ).push(bytes);
  return frames;
}

/** The code and reason of a close frame's payload (1005 when empty). */
export function closeOf(frame: WireFrame): { code: number; reason: string } {
  if (frame.opcode !== Opcode.Close) throw new Error(`expected a close frame, got opcode ${frame.opcode}`);
  if (frame.payload.length === 0) return { code: 1005, reason: '' };
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.toString('utf8', 2) };
}

export interface LogRecord {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  readonly args: readonly unknown[];
}

/** A pino Logger stand-in that keeps every call in `records` (child() returns the same logger). */
export function recordingLogger(): Logger & { readonly records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger: Record<string, unknown> = { records, level: 'trace' };
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) {
    logger[level] = (...args: unknown[]) => records.push({ level, args });
  }
  logger.child = () => logger;
  return logger as unknown as Logger & { readonly records: LogRecord[] };
}

/** Resolves after one event-loop turn: what was scheduled with setImmediate before it has run. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Lets `turns` event-loop turns pass: flushes, their write callbacks, and what those schedule. */
export async function settle(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await nextTurn();
}
