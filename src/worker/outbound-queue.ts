import type { Priority } from '../shared/app.ts';
import type { PreparedMessage } from '../shared/prepared-message.ts';

/** A message waiting behind a slow socket. `release` returns a pooled frame on every path. */
export type QueuedMessage = QueuedData | QueuedFrames;

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
 * OutboundQueue holds what a connection could not write yet, one FIFO per priority: `high`
 * leaves first, `low` is the first to be dropped when the connection is over its limit.
 */
export class OutboundQueue {
  readonly #high: QueuedMessage[] = [];
  readonly #normal: QueuedMessage[] = [];
  readonly #low: QueuedMessage[] = [];
  #bytes = 0;
  #count = 0;

  get bytes(): number {
    return this.#bytes;
  }

  get length(): number {
    return this.#count;
  }

  push(message: QueuedMessage): void {
    this.#lane(message.priority).push(message);
    this.#bytes += message.size;
    this.#count++;
  }

  shift(): QueuedMessage | undefined {
    const message = this.#high.shift() ?? this.#normal.shift() ?? this.#low.shift();
    if (message) {
      this.#bytes -= message.size;
      this.#count--;
    }
    return message;
  }

  /** Drops low-priority messages, oldest first, until `bytes` fit; returns how many went. */
  dropLow(bytesNeeded: number, limit: number): number {
    let dropped = 0;
    while (this.#low.length > 0 && this.#bytes + bytesNeeded > limit) {
      const message = this.#low.shift()!;
      this.#bytes -= message.size;
      this.#count--;
      message.release?.();
      dropped++;
    }
    return dropped;
  }

  /** Empties the queue, releasing pooled frames. */
  clear(): void {
    for (const lane of [this.#high, this.#normal, this.#low]) {
      for (const message of lane) message.release?.();
      lane.length = 0;
    }
    this.#bytes = 0;
    this.#count = 0;
  }

  #lane(priority: Priority): QueuedMessage[] {
    return priority === 'high' ? this.#high : priority === 'low' ? this.#low : this.#normal;
  }
}
