/**
 * StreamOutbox writes a server's publishes to their streams (durable bridge) in the order they
 * were made, through outages, each once:
 *
 * - each topic has one append in flight at a time, carrying every publish that waited behind
 *   the previous one (a batch, appended by one script call): a topic's publishes cannot overtake
 *   each other whatever the client does with a command it retries (ioredis's cluster client
 *   re-routes a command whose connection broke, after commands sent behind it), and a busy topic
 *   costs one round trip per batch, not per message;
 * - while the broker is unreachable (or slow), publishes wait in a buffer bounded in bytes; past
 *   the bound the oldest are dropped, counted, rejected, and reported in one notice per turn;
 * - a batch whose answer was lost with the connection may or may not have been appended: it is
 *   looked for in its stream (this server's origin and the publishes' sequence numbers) before
 *   it is sent again, so a lost answer never makes a second entry with another id.
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
  /** It waited for the broker (an outage, or a lost answer). */
  waited: boolean;
  state: 'waiting' | 'sent' | 'settled';
}

/** One topic's publishes: those waiting, and the batch on its way. */
interface Lane {
  readonly topic: string;
  readonly waiting: Pending[];
  sending: Pending[] | null;
  /** The answer to `sending` was lost: settled by a search before anything else goes. */
  lost: boolean;
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

/** A batch stays below both: a script call's arguments are held in Redis's memory at once. */
const BATCH_ENTRIES = 256;
const BATCH_BYTES = 1024 * 1024;
/** After a failed search while the broker still answers (a timeout), the next try. */
const RETRY_MS = 1000;

export class StreamOutbox {
  readonly #target: OutboxTarget;
  readonly #limit: number;
  readonly #onDrop: (count: number, topics: readonly string[]) => void;
  readonly #onError: (topic: string, error: Error) => void;
  readonly #lanes = new Map<string, Lane>();
  /** Waiting publishes in the order they were made (for dropping the oldest); others are skipped. */
  #order: Pending[] = [];
  #head = 0;
  #waiting = 0;
  #bytes = 0;
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
      pending = { topic, entry, sequence, after, resolve, reject, waited: !this.#target.ready, state: 'waiting' };
    });
    let lane = this.#lanes.get(topic);
    if (lane === undefined) this.#lanes.set(topic, (lane = { topic, waiting: [], sending: null, lost: false }));
    lane.waiting.push(pending);
    this.#order.push(pending);
    this.#waiting++;
    this.#bytes += entry.length;
    this.#trim();
    this.#pump(lane);
    return promise;
  }

  /** The broker is reachable again: settle the batches whose answer was lost, then write what waited. */
  resume(): void {
    // Everything still queued waited for the broker (`flushed`), also what was pushed before the
    // link noticed the loss and then queued behind a batch whose answer was lost.
    for (const lane of this.#lanes.values()) for (const pending of lane.waiting) pending.waited = true;
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
    for (const lane of this.#lanes.values()) {
      for (const pending of [...(lane.lost ? lane.sending! : []), ...lane.waiting]) this.#fail(pending, new BridgeDropError('the bridge closed before the broker took this publish'));
    }
    this.#lanes.clear();
    this.#order = [];
    this.#head = 0;
    this.#waiting = 0;
    this.#bytes = 0;
  }

  /** Sends the lane's next batch, unless one is on its way. */
  #pump(lane: Lane): void {
    if (lane.sending !== null || this.#closed || !this.#target.ready) return;
    if (lane.waiting.length === 0) {
      this.#lanes.delete(lane.topic);
      return;
    }
    let count = 0;
    let bytes = 0;
    while (count < lane.waiting.length && count < BATCH_ENTRIES && (count === 0 || bytes + lane.waiting[count]!.entry.length <= BATCH_BYTES)) {
      bytes += lane.waiting[count]!.entry.length;
      count++;
    }
    const batch = lane.waiting.splice(0, count);
    for (const pending of batch) pending.state = 'sent';
    this.#waiting -= count;
    this.#bytes -= bytes;
    this.#compact();
    this.#send(lane, batch);
  }

  #send(lane: Lane, batch: Pending[]): void {
    lane.sending = batch;
    lane.lost = false;
    this.#target.append(
      lane.topic,
      batch.map((pending) => pending.entry),
    ).then(
      (ids) => {
        lane.sending = null;
        batch.forEach((pending, i) => this.#done(pending, ids[i]!, false));
        this.#pump(lane);
      },
      (error: Error) => {
        if (this.#closed) {
          for (const pending of batch) this.#fail(pending, new BridgeDropError('the bridge closed before the broker took this publish'));
          return;
        }
        if (error.name === 'ReplyError') {
          // Redis answered: these entries are refused (out of memory, a key of another type…), not lost.
          lane.sending = null;
          this.#dropped += batch.length;
          this.#onError(lane.topic, error);
          for (const pending of batch) this.#fail(pending, error);
          this.#pump(lane);
          return;
        }
        lane.lost = true;
        for (const pending of batch) pending.waited = true;
        // Were the connection still up (a timeout), no 'up' would come to settle it.
        if (this.#target.ready) setImmediate(() => this.resume());
      },
    );
  }

  async #resume(): Promise<void> {
    if (this.#checking || this.#closed || !this.#target.ready) return;
    this.#checking = true;
    let failed = false;
    try {
      for (const lane of [...this.#lanes.values()]) {
        if (!lane.lost) continue;
        const batch = lane.sending!;
        const found = await this.#target.find(lane.topic, batch[0]!.after, new Set(batch.map((p) => p.sequence)));
        if (this.#closed) return;
        const again = batch.filter((pending) => {
          const id = found.get(pending.sequence);
          if (id !== undefined) this.#done(pending, id, true);
          return id === undefined;
        });
        if (again.length > 0) this.#send(lane, again);
        else {
          lane.sending = null;
          lane.lost = false;
        }
      }
    } catch {
      // The broker went away again (its 'up' tries again), or a search timed out.
      failed = true;
    } finally {
      this.#checking = false;
    }
    if (failed) {
      if (this.#target.ready) setTimeout(() => this.resume(), RETRY_MS).unref();
      return;
    }
    for (const lane of [...this.#lanes.values()]) this.#pump(lane);
  }

  #done(pending: Pending, id: string, confirmed: boolean): void {
    if (pending.state === 'settled') return;
    pending.state = 'settled';
    this.#published++;
    if (confirmed) this.#confirmed++;
    if (pending.waited) this.#flushed++;
    pending.resolve(id);
  }

  #fail(pending: Pending, error: Error): void {
    if (pending.state === 'settled') return;
    pending.state = 'settled';
    pending.reject(error);
  }

  /** Past the bound, the oldest waiting publishes go. */
  #trim(): void {
    while (this.#bytes > this.#limit && this.#waiting > 0) {
      let pending = this.#order[this.#head++]!;
      while (pending.state !== 'waiting') pending = this.#order[this.#head++]!;
      // A topic's publishes wait in the order they were made: the oldest of all is its lane's first.
      this.#lanes.get(pending.topic)!.waiting.shift();
      this.#waiting--;
      this.#bytes -= pending.entry.length;
      this.#dropped++;
      this.#fail(pending, new BridgeDropError('dropped: the outage buffer is full'));
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
    this.#compact();
  }

  /** Forgets the order of publishes that no longer wait, once they are most of it. */
  #compact(): void {
    if (this.#waiting === 0) {
      this.#order = [];
      this.#head = 0;
    } else if (this.#order.length - this.#head > 2 * this.#waiting + 1024) {
      this.#order = this.#order.slice(this.#head).filter((pending) => pending.state === 'waiting');
      this.#head = 0;
    }
  }
}
