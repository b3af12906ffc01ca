/**
 * The one write path to a socket, shared by the server's connections, the client and the load
 * generator: frames gathered during an event-loop turn (FrameSink, a FrameWriter bound to a
 * socket) and written at the end of the turn with one writev per connection (FlushScheduler).
 * An echo of 50 frames or a publish to 1,000 subscribers costs one write call per socket.
 */
import { FrameWriter } from '../shared/frame-writer.ts';
import type { ByteArena } from '../shared/frame-writer.ts';
import type { MaskKeySource } from '../shared/mask.ts';
import type { Opcode } from '../shared/opcodes.ts';
import type { FrameTransport } from './frame-transport.ts';

/** Something with frames gathered during this turn. */
export interface Flushable {
  flush(): void;
}

/**
 * FlushScheduler flushes every target scheduled during an event-loop turn once, in
 * setImmediate: after all the reads of this turn were handled, so their replies share a write.
 * One per thread; the two arrays are swapped, so a steady flow allocates nothing.
 */
export class FlushScheduler {
  #dirty: Flushable[] = [];
  #spare: Flushable[] = [];
  #scheduled = false;
  readonly #run = (): void => this.#flushAll();

  schedule(target: Flushable): void {
    this.#dirty.push(target);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  #flushAll(): void {
    this.#scheduled = false;
    const batch = this.#dirty;
    this.#dirty = this.#spare;
    for (let i = 0; i < batch.length; i++) batch[i]!.flush();
    batch.length = 0;
    this.#spare = batch;
  }
}

/**
 * Told of each flush of `owner`'s frames before they are written; returns what to run once the
 * socket has taken the last byte, if anything. One function for every sink of a kind.
 */
export type FlushHook<O> = (owner: O, bytes: number) => ((error?: Error | null) => void) | undefined;

/**
 * FrameSink is one connection's outgoing frames: a FrameWriter (headers and small payloads
 * packed in the thread's arena, large payloads as their own chunks) that schedules itself on
 * the first frame of a turn and writes everything in one cork/writev when flushed. The socket
 * may be attached later (a client before its handshake completes).
 */
export class FrameSink<O = null> extends FrameWriter implements Flushable {
  readonly #scheduler: FlushScheduler;
  readonly #onFlush: FlushHook<O> | null;
  readonly #owner: O;
  #socket: FrameTransport | null;
  #scheduled = false;

  constructor(arena: ByteArena, maskKeys: MaskKeySource | null, scheduler: FlushScheduler, socket: FrameTransport | null, onFlush: FlushHook<O> | null, owner: O) {
    super(arena, maskKeys);
    this.#scheduler = scheduler;
    this.#socket = socket;
    this.#onFlush = onFlush;
    this.#owner = owner;
  }

  attach(socket: FrameTransport): void {
    this.#socket = socket;
  }

  override frame(opcode: Opcode, payload: Uint8Array, fin: boolean, rsv1: boolean): void {
    super.frame(opcode, payload, fin, rsv1);
    this.#schedule();
  }

  override raw(frames: Buffer): void {
    super.raw(frames);
    this.#schedule();
  }

  /**
   * Writes what this turn gathered. Returns false when there was nothing to write, or no socket
   * left to write it to (the frames are dropped).
   */
  flush(): boolean {
    this.#scheduled = false;
    const chunks = this.take();
    if (chunks === null) return false;
    const socket = this.#socket;
    if (socket === null || socket.destroyed) {
      this.recycle(chunks);
      return false;
    }
    let done: ((error?: Error | null) => void) | undefined;
    if (this.#onFlush !== null) {
      let bytes = 0;
      for (let i = 0; i < chunks.length; i++) bytes += chunks[i]!.length;
      done = this.#onFlush(this.#owner, bytes);
    }
    writeChunks(socket, chunks, done);
    this.recycle(chunks);
    return true;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#scheduler.schedule(this);
  }
}

/** Writes `chunks` in order as one writev (cork/uncork); `done` runs after the last one. */
export function writeChunks(socket: FrameTransport, chunks: readonly Buffer[], done?: (error?: Error | null) => void): void {
  if (chunks.length === 1) {
    socket.write(chunks[0]!, done);
    return;
  }
  socket.cork();
  const last = chunks.length - 1;
  for (let i = 0; i < last; i++) socket.write(chunks[i]!);
  socket.write(chunks[last]!, done);
  socket.uncork();
}
