/**
 * StreamOutbox writes a server's publishes to their streams (durable bridge) in the order they
 * were made, through outages, each once:
 *
 * - while the broker is unreachable, publishes wait in a buffer bounded in bytes; past the bound
 *   the oldest are dropped, counted, rejected, and reported in one notice per turn;
 * - when it is back, what waited is written in order before anything newer;
 * - a publish whose answer was lost with the connection may or may not have been appended: it is
 *   looked for in its stream (by this server's origin and the publish's sequence number) before
 *   it is written again, so a lost answer never makes a second entry with another id.
 */
import type { OutboxTarget } from './stream-store.ts';

interface Pending {
  readonly topic: string;
  readonly entry: Buffer;
  readonly sequence: number;
  /** An id at or before where this entry lands, when known: where the search for it starts. */
  readonly after: string | null;
  readonly resolve: (id: string) => void;
  readonly reject: (error: Error) => void;
  /** It waited in the buffer. */
  waited: boolean;
}

export class BridgeDropError extends Error {
  override readonly name = 'BridgeDropError';
}

export interface OutboxStats {
  readonly published: number;
  readonly buffered: number;
  readonly bufferedBytes: number;
  readonly flushed: number;
  readonly confirmed: number;
  readonly dropped: number;
}

export class StreamOutbox {
  readonly #target: OutboxTarget;
  readonly #limit: number;
  readonly #onDrop: (count: number, topics: readonly string[]) => void;
  readonly #onError: (topic: string, error: Error) => void;
  /** Not yet sent, oldest first, from #head on. */
  #queue: Pending[] = [];
  #head = 0;
  #bytes = 0;
  /** Sent; the answer was lost. */
  #lost: Pending[] = [];
  #checking = false;
  #closed = false;
  #dropNotice: { count: number; topics: Set<string> } | null = null;
  #published = 0;
  #flushed = 0;
  #confirmed = 0;
  #dropped = 0;

  /** `limit`: bytes of entries the buffer holds at most. */
  constructor(target: OutboxTarget, limit: number, onDrop: (count: number, topics: readonly string[]) => void, onError: (topic: string, error: Error) => void) {
    this.#target = target;
    this.#limit = limit;
    this.#onDrop = onDrop;
    this.#onError = onError;
  }

  /** Appends `entry` (numbered `sequence`) to `topic`'s stream, now or once the broker is back. */
  push(topic: string, entry: Buffer, sequence: number, after: string | null): Promise<string> {
    if (this.#closed) return Promise.reject(new BridgeDropError('the bridge is closed'));
    let pending!: Pending;
    const promise = new Promise<string>((resolve, reject) => {
      pending = { topic, entry, sequence, after, resolve, reject, waited: false };
    });
    if (this.#target.ready && this.#waiting === 0 && this.#lost.length === 0 && !this.#checking) {
      this.#send(pending);
      return promise;
    }
    pending.waited = true;
    this.#queue.push(pending);
    this.#bytes += entry.length;
    this.#trim();
    return promise;
  }

  /** The broker is reachable again: settle what was lost in flight, then write what waited. */
  resume(): void {
    void this.#resume();
  }

  stats(): OutboxStats {
    return {
      published: this.#published,
      buffered: this.#waiting,
      bufferedBytes: this.#bytes,
      flushed: this.#flushed,
      confirmed: this.#confirmed,
      dropped: this.#dropped,
    };
  }

  /** Rejects everything not yet written. */
  close(): void {
    this.#closed = true;
    const left = [...this.#lost, ...this.#queue.slice(this.#head)];
    this.#lost = [];
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
    for (const pending of left) pending.reject(new BridgeDropError('the bridge closed before the broker took this publish'));
  }

  get #waiting(): number {
    return this.#queue.length - this.#head;
  }

  #send(pending: Pending): void {
    this.#target.append(pending.topic, pending.entry).then(
      (id) => {
        this.#published++;
        if (pending.waited) this.#flushed++;
        pending.resolve(id);
      },
      (error: Error) => {
        if (error.name === 'ReplyError') {
          // Redis answered: this entry is refused (out of memory, a key of another type…), not lost.
          this.#dropped++;
          this.#onError(pending.topic, error);
          pending.reject(error);
          return;
        }
        this.#lost.push(pending);
        // Were the connection still up (a timeout), no 'up' would come to settle it.
        if (this.#target.ready) setImmediate(() => this.resume());
      },
    );
  }

  async #resume(): Promise<void> {
    if (this.#checking || this.#closed || !this.#target.ready) return;
    if (this.#lost.length > 0) {
      this.#checking = true;
      const lost = this.#lost.splice(0).sort((a, b) => a.sequence - b.sequence);
      try {
        const again = await this.#settle(lost);
        // Older than anything waiting: written first.
        for (const pending of again) {
          pending.waited = true;
          this.#bytes += pending.entry.length;
        }
        this.#queue = [...again, ...this.#queue.slice(this.#head)];
        this.#head = 0;
      } catch {
        // The broker went away again: the next 'up' tries again.
        this.#lost.unshift(...lost);
        return;
      } finally {
        this.#checking = false;
      }
    }
    while (this.#waiting > 0 && this.#target.ready && !this.#closed) {
      const pending = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as never;
      this.#bytes -= pending.entry.length;
      this.#send(pending);
    }
    if (this.#head > 0 && this.#waiting === 0) {
      this.#queue = [];
      this.#head = 0;
    }
  }

  /** Resolves the lost publishes that were appended after all; returns the others, in order. */
  async #settle(lost: Pending[]): Promise<Pending[]> {
    const byTopic = new Map<string, Pending[]>();
    for (const pending of lost) {
      const list = byTopic.get(pending.topic);
      if (list === undefined) byTopic.set(pending.topic, [pending]);
      else list.push(pending);
    }
    const found = new Map<Pending, string>();
    for (const [topic, list] of byTopic) {
      const after = list.some((p) => p.after === null) ? null : list[0]!.after;
      const ids = await this.#target.find(topic, after, new Set(list.map((p) => p.sequence)));
      for (const pending of list) {
        const id = ids.get(pending.sequence);
        if (id !== undefined) found.set(pending, id);
      }
    }
    const again: Pending[] = [];
    for (const pending of lost) {
      const id = found.get(pending);
      if (id === undefined) {
        again.push(pending);
        continue;
      }
      this.#published++;
      this.#confirmed++;
      pending.resolve(id);
    }
    return again;
  }

  /** Past the bound, the oldest waiting publishes go. */
  #trim(): void {
    while (this.#bytes > this.#limit && this.#waiting > 0) {
      const pending = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as never;
      this.#bytes -= pending.entry.length;
      this.#dropped++;
      pending.reject(new BridgeDropError('dropped: the outage buffer is full'));
      if (this.#dropNotice === null) {
        this.#dropNotice = { count: 0, topics: new Set() };
        setImmediate(() => {
          const notice = this.#dropNotice!;
          this.#dropNotice = null;
          this.#onDrop(notice.count, [...notice.topics]);
        });
      }
      this.#dropNotice.count++;
      this.#dropNotice.topics.add(pending.topic);
    }
    // A long outage would otherwise keep every dropped slot of the array.
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
