import type { Priority } from '../shared/app.ts';
import type { PreparedMessage } from '../shared/prepared-message.ts';
import type { OutgoingStream } from './outgoing-stream.ts';

/** A message waiting behind a slow socket. `release` returns a pooled frame on every path. */
export type QueuedMessage = QueuedData | QueuedFrames | QueuedStream;

/** A data message to frame (and maybe compress) when it leaves the queue. */
export interface QueuedData {
  readonly kind: 'data';
  readonly priority: Priority;
  readonly size: number;
  readonly payload: Buffer;
  readonly binary: boolean;
  readonly compress: boolean;
  readonly release: null;
}

/** A broadcast: complete frames, chosen for this connection, with their release hook. */
export interface QueuedFrames {
  readonly kind: 'frames';
  readonly priority: Priority;
  readonly size: number;
  readonly message: PreparedMessage;
  readonly frames: Buffer;
  /** The frames were compressed without this connection's context (see afterSharedFrame). */
  readonly compressed: boolean;
  readonly release: (() => void) | null;
}

/**
 * A message sent in fragments that has not started: its place in the order. Its fragments
 * wait in the stream, which may still be receiving them; the queue counts their bytes.
 */
export interface QueuedStream {
  readonly kind: 'stream';
  readonly priority: Priority;
  /** Always 0: the stream's bytes are counted as they are now (OutboundQueue.bytes). */
  readonly size: 0;
  readonly stream: OutgoingStream;
  readonly release: null;
}

/**
 * OutboundQueue holds what a connection could not write yet, one FIFO per priority: `high`
 * leaves first, `low` is the first to be dropped when the connection is over its limit.
 */
export class OutboundQueue {
  readonly #high: QueuedMessage[] = [];
  readonly #normal: QueuedMessage[] = [];
  readonly #low: QueuedMessage[] = [];
  /** Bytes of the messages of fixed size. */
  #bytes = 0;
  #count = 0;
  /** Queued streams, whose size grows while they wait. */
  readonly #streams = new Set<OutgoingStream>();

  /** Bytes waiting: the messages' sizes and what the queued streams hold now. */
  get bytes(): number {
    let bytes = this.#bytes;
    if (this.#streams.size > 0) for (const stream of this.#streams) bytes += stream.pendingBytes;
    return bytes;
  }

  get length(): number {
    return this.#count;
  }

  push(message: QueuedMessage): void {
    this.#lane(message.priority).push(message);
    this.#bytes += message.size;
    this.#count++;
    if (message.kind === 'stream') this.#streams.add(message.stream);
  }

  shift(): QueuedMessage | undefined {
    const message = this.#high.shift() ?? this.#normal.shift() ?? this.#low.shift();
    if (message) this.#took(message);
    return message;
  }

  /**
   * Drops low-priority messages, oldest first, until `bytes` fit, telling `dropped` of each
   * (before its pooled frame is released); returns how many went.
   */
  dropLow(bytesNeeded: number, limit: number, dropped: (message: QueuedMessage) => void): number {
    let count = 0;
    while (this.#low.length > 0 && this.bytes + bytesNeeded > limit) {
      const message = this.#low.shift()!;
      dropped(message);
      this.#took(message);
      message.release?.();
      count++;
    }
    return count;
  }

  /** Empties the queue, telling `dropped` of each message (if given) and releasing pooled frames. */
  clear(dropped?: (message: QueuedMessage) => void): void {
    for (const lane of [this.#high, this.#normal, this.#low]) {
      for (const message of lane) {
        dropped?.(message);
        message.release?.();
      }
      lane.length = 0;
    }
    this.#bytes = 0;
    this.#count = 0;
    this.#streams.clear();
  }

  #took(message: QueuedMessage): void {
    this.#bytes -= message.size;
    this.#count--;
    if (message.kind === 'stream') this.#streams.delete(message.stream);
  }

  #lane(priority: Priority): QueuedMessage[] {
    return priority === 'high' ? this.#high : priority === 'low' ? this.#low : this.#normal;
  }
}
