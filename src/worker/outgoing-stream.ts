/**
 * A message a connection sends in fragments as the app produces it (`ws.sendFragment`), from
 * its first fragment to its last. RFC 6455 §5.4: once its first frame is on the wire no other
 * data frame may be written until its last (control frames may come between), so the
 * connection holds other messages back while one is being written (`Connection`), and the
 * fragments that cannot go out yet wait here, in order, never reordered by priority or
 * dropped one by one.
 */
import type { Priority } from '../shared/app.ts';
import { Opcode } from '../shared/opcodes.ts';
import type { DataOpcode } from '../shared/opcodes.ts';

export interface Fragment {
  readonly data: Buffer;
  readonly fin: boolean;
}

export class OutgoingStream {
  /** Text or Binary: the opcode of the first frame; the rest are continuations. */
  readonly opcode: DataOpcode;
  /** Compressed with permessage-deflate, decided on the first fragment for the whole message. */
  readonly compress: boolean;
  readonly priority: Priority;
  /** Fragments accepted and not yet framed. */
  readonly #pending: Fragment[] = [];
  #pendingBytes = 0;
  /** Frames written so far (the first carries the opcode and RSV1). */
  #framed = 0;
  /** Bytes of the message framed so far, before compression. */
  #size = 0;
  /** The app sent the last fragment (it may still wait here). */
  #finished = false;
  /** Dropped by the slow-client policy before any frame was written: later fragments go too. */
  #dropped = false;

  constructor(binary: boolean, compress: boolean, priority: Priority) {
    this.opcode = binary ? Opcode.Binary : Opcode.Text;
    this.compress = compress;
    this.priority = priority;
  }

  get binary(): boolean {
    return this.opcode === Opcode.Binary;
  }

  /** Bytes of the fragments waiting here. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  get hasPending(): boolean {
    return this.#pending.length > 0;
  }

  /** A frame of it is on the wire: nothing but control frames may follow until its last. */
  get started(): boolean {
    return this.#framed > 0;
  }

  /** Bytes of the message framed so far (its size once the last fragment is), before compression. */
  get size(): number {
    return this.#size;
  }

  get finished(): boolean {
    return this.#finished;
  }

  get dropped(): boolean {
    return this.#dropped;
  }

  /** Takes a fragment from the app; `fin` ends the message. */
  accept(fin: boolean): void {
    if (fin) this.#finished = true;
  }

  /** Keeps a fragment until it can be framed. */
  push(fragment: Fragment): void {
    this.#pending.push(fragment);
    this.#pendingBytes += fragment.data.length;
  }

  /** The next fragment to frame, and the opcode its frame carries. */
  shift(): Fragment | undefined {
    const fragment = this.#pending.shift();
    if (fragment !== undefined) this.#pendingBytes -= fragment.data.length;
    return fragment;
  }

  /** The opcode of the next frame written, which carries `bytes` of the message: counts both. */
  nextOpcode(bytes: number): Opcode {
    this.#size += bytes;
    return this.#framed++ === 0 ? this.opcode : Opcode.Continuation;
  }

  /**
   * Drops the message (only before its first frame): what waits here goes, and so will the
   * fragments still to come. Returns the bytes dropped.
   */
  drop(): Fragment[] {
    if (this.started) throw new Error('a message on the wire cannot be dropped');
    this.#dropped = true;
    const dropped = this.#pending.splice(0);
    this.#pendingBytes = 0;
    return dropped;
  }
}
