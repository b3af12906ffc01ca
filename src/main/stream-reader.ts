/**
 * StreamReader follows the streams of the topics this server has subscribers for (durable
 * bridge) and hands each entry on once, in the stream's order, from wherever it came:
 *
 * - live, from the announcement the append script publishes with every entry;
 * - read back from the stream after the last id delivered, whenever announcements may have been
 *   missed: a topic just subscribed (from its last entry at that moment), and every topic after
 *   its subscription was interrupted (a reconnect). Announcements that arrive meanwhile are held,
 *   and the ids decide what is new: an entry at or before the last delivered one is skipped.
 *
 * It also serves recoveries: a topic's entries after a client's last id, read from the stream.
 */
import { FIRST_ID, compareStreamIds } from '../shared/stream-id.ts';
import type { StreamMessage } from './bridge-envelope.ts';
import type { RawEntry, StreamBounds, StreamSource } from './stream-store.ts';
import type { BridgeLog, Replay, StreamEntry } from './topic-bridge.ts';

interface TopicState {
  /** The last id delivered, or where delivery starts; null until known. */
  position: string | null;
  /** Announcements held while the stream is read back; null while live. */
  held: RawEntry[] | null;
  syncing: boolean;
  /** Another read-back was asked for while one ran. */
  again: boolean;
  /** Settles once `position` is known (or the topic is dropped). */
  readonly known: Promise<void>;
  readonly settle: () => void;
}

export interface ReaderStats {
  readonly received: number;
  readonly topics: number;
  readonly replays: number;
  readonly replayed: number;
}

const BATCH = 1000;
/** After a failed read-back while the broker still answers (a timeout), the next try. */
const RETRY_MS = 1000;

export class StreamReader {
  readonly #source: StreamSource;
  readonly #decode: (entry: Buffer) => StreamMessage | null;
  readonly #deliver: (topic: string, entry: StreamEntry) => void;
  readonly #log: () => BridgeLog | null;
  readonly #topics = new Map<string, TopicState>();
  #ready: (() => void)[] = [];
  #closed = false;
  #received = 0;
  #replays = 0;
  #replayed = 0;

  constructor(source: StreamSource, decode: (entry: Buffer) => StreamMessage | null, deliver: (topic: string, entry: StreamEntry) => void, log: () => BridgeLog | null) {
    this.#source = source;
    this.#decode = decode;
    this.#deliver = deliver;
    this.#log = log;
  }

  subscribe(topic: string): void {
    if (this.#topics.has(topic)) return;
    let settle!: () => void;
    const known = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const state: TopicState = { position: null, held: [], syncing: false, again: false, known, settle };
    this.#topics.set(topic, state);
    void this.#sync(topic, state);
  }

  unsubscribe(topic: string): void {
    const state = this.#topics.get(topic);
    if (state === undefined) return;
    this.#topics.delete(topic);
    state.settle();
    this.#source.stopListening(topic);
  }

  /** The last id delivered for `topic` (null when not followed or not yet known). */
  position(topic: string): string | null {
    return this.#topics.get(topic)?.position ?? null;
  }

  /** An announcement: `entry` is a view of the client's read buffer. */
  announced(topic: string, id: string, entry: Buffer): void {
    const state = this.#topics.get(topic);
    if (state === undefined) return;
    if (state.held !== null) state.held.push({ id, entry: Buffer.from(entry) });
    else this.#accept(topic, state, id, entry);
  }

  /** Announcements may be missed from now on: hold them until the stream is read back. */
  interrupted(): void {
    for (const state of this.#topics.values()) state.held ??= [];
  }

  /** The broker answers and the subscriptions are in place: read back what may have been missed. */
  resync(): void {
    if (!this.#source.ready) return;
    const waiting = this.#ready;
    this.#ready = [];
    for (const resolve of waiting) resolve();
    for (const [topic, state] of this.#topics) if (state.held !== null) void this.#sync(topic, state);
  }

  /** `topic`'s entries after `since`, and whether the stream still had every one of them. */
  async replay(topic: string, since: string): Promise<Replay> {
    // Entries after the topic's starting point reach this server live: the read must come after it.
    await this.#topics.get(topic)?.known;
    for (;;) {
      await this.#whenReady();
      try {
        const entries: StreamEntry[] = [];
        let after = since;
        for (;;) {
          const batch = await this.#source.range(topic, after, BATCH);
          for (const raw of batch) {
            const message = this.#decode(raw.entry);
            if (message !== null) entries.push({ id: raw.id, payload: message.payload, binary: message.binary, except: null });
          }
          if (batch.length < BATCH) break;
          after = batch[batch.length - 1]!.id;
        }
        // Read after the entries: trimming only removes the oldest, so if `since` is still
        // covered now, it was while they were read.
        const complete = isComplete(since, await this.#source.bounds(topic));
        this.#replays++;
        this.#replayed += entries.length;
        return { entries, complete };
      } catch (error) {
        if (this.#closed) throw error;
        this.#log()?.warn({ topic, err: (error as Error).message }, 'redis bridge: reading a recovery failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  stats(): ReaderStats {
    return { received: this.#received, topics: this.#topics.size, replays: this.#replays, replayed: this.#replayed };
  }

  close(): void {
    this.#closed = true;
    for (const state of this.#topics.values()) state.settle();
    this.#topics.clear();
    this.#ready = [];
  }

  #whenReady(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the bridge is closed'));
    if (this.#source.ready) return Promise.resolve();
    return new Promise((resolve) => this.#ready.push(resolve));
  }

  /** Reads `topic`'s stream back from its position, then delivers what was held, and goes live. */
  async #sync(topic: string, state: TopicState): Promise<void> {
    if (state.syncing) {
      state.again = true;
      return;
    }
    state.syncing = true;
    const current = (): boolean => this.#topics.get(topic) === state && !this.#closed;
    try {
      do {
        state.again = false;
        if (!this.#source.ready) return;
        if (state.position === null) {
          // Where delivery starts: after the last entry there is before announcements are heard.
          const last = await this.#source.lastId(topic);
          if (!current()) return;
          state.position = last;
          state.settle();
        }
        // Confirmed before reading: whatever the read does not return is announced after it.
        if (!(await this.#source.listen(topic)) || !current()) return;
        for (;;) {
          const batch = await this.#source.range(topic, state.position!, BATCH);
          if (!current()) return;
          for (const raw of batch) this.#accept(topic, state, raw.id, raw.entry);
          if (batch.length < BATCH) break;
        }
        const held = state.held ?? [];
        state.held = null;
        for (const raw of held) this.#accept(topic, state, raw.id, raw.entry);
      } while (state.again && current());
    } catch (error) {
      if (!current()) return;
      this.#log()?.warn({ topic, err: (error as Error).message }, 'redis bridge: reading a stream back failed; trying again');
      setTimeout(() => {
        if (current() && state.held !== null) void this.#sync(topic, state);
      }, RETRY_MS).unref();
    } finally {
      state.syncing = false;
    }
  }

  #accept(topic: string, state: TopicState, id: string, entry: Buffer): void {
    if (state.position !== null && compareStreamIds(id, state.position) <= 0) return;
    state.position = id;
    const message = this.#decode(entry);
    if (message === null) return;
    this.#received++;
    this.#deliver(topic, { id, payload: message.payload, binary: message.binary, except: message.except });
  }
}

/**
 * Whether a stream described by `bounds` still holds every entry after `since`. Trimming removes
 * the oldest entries, so it does when nothing was ever removed, or when `since` is at or after
 * the oldest one left. Missing stream (unless `since` is 0-0),
 * ids gone backwards (the stream was made anew, Redis lost its data) or an entry deleted after
 * `since`: no. One case says no wrongly: `since` was the very last entry trimmed.
 */
export function isComplete(since: string, bounds: StreamBounds | null): boolean {
  // No stream: nothing to miss only for a client that has seen nothing.
  if (bounds === null) return since === FIRST_ID;
  if (compareStreamIds(since, bounds.lastGenerated) > 0) return false;
  if (compareStreamIds(since, bounds.maxDeleted) < 0) return false;
  if (bounds.removed === 0) return true;
  if (bounds.first === null) return compareStreamIds(since, bounds.lastGenerated) === 0;
  return compareStreamIds(since, bounds.first) >= 0;
}
