/**
 * TopicRecovery joins a recovering subscriber's replay to the live entries without a gap or a
 * duplicate (durable bridge). A connection that subscribes with `since` is a subscriber at once,
 * so every live entry of the topic from then on reaches it; the replay (the stream's entries
 * after `since`, read by the primary after that moment) covers everything before. The two
 * overlap, and the ids decide: live entries wait here until the replay has been sent, then only
 * those after the last id sent go out, and later live entries at or before it are skipped until
 * the live ones pass it.
 */
import { compareStreamIds } from '../shared/stream-id.ts';

/** A live entry framed for the topic's subscribers (`M`: a PreparedMessage), waiting for the replay. */
interface Held<M> {
  readonly id: string;
  readonly message: M;
}

interface Recovering<M> {
  /** The last id the connection has (starts at `since`). */
  floor: string;
  /** Live entries waiting for the replay; null once it was sent. */
  held: Held<M>[] | null;
}

/** How TopicRecovery reaches the connection: framed live entries, and replayed ones in order. */
export interface RecoverySink<C, M> {
  sendFrames(connection: C, message: M): void;
}

export class TopicRecovery<C, M> {
  readonly #topics = new Map<string, Map<C, Recovering<M>>>();
  readonly #sink: RecoverySink<C, M>;

  constructor(sink: RecoverySink<C, M>) {
    this.#sink = sink;
  }

  /** The recovering subscribers of `topic`, if any (the live path checks this once per entry). */
  of(topic: string): ReadonlyMap<C, unknown> | undefined {
    return this.#topics.get(topic);
  }

  begin(topic: string, connection: C, since: string): void {
    let recovering = this.#topics.get(topic);
    if (recovering === undefined) this.#topics.set(topic, (recovering = new Map()));
    recovering.set(connection, { floor: since, held: [] });
  }

  /** A live entry for a recovering `connection` (one `of(topic)` holds). */
  live(topic: string, connection: C, id: string, message: M): void {
    const state = this.#topics.get(topic)?.get(connection);
    if (state === undefined) return;
    if (state.held !== null) {
      state.held.push({ id, message });
      return;
    }
    if (compareStreamIds(id, state.floor) <= 0) return;
    // Live has passed everything the replay sent: nothing more to compare.
    this.forget(topic, connection);
    this.#sink.sendFrames(connection, message);
  }

  /**
   * The replay arrived: `send` each entry after `since` (in order), then the held live entries
   * that come after them. Returns how many replayed entries are new to the connection, or -1
   * when it no longer recovers this topic (closed, unsubscribed).
   */
  replayed<E extends { readonly id: string }>(topic: string, connection: C, entries: readonly E[], announce: (count: number) => void, send: (entry: E) => void): number {
    const state = this.#topics.get(topic)?.get(connection);
    if (state === undefined || state.held === null) return -1;
    const fresh = entries.filter((entry) => compareStreamIds(entry.id, state.floor) > 0);
    announce(fresh.length);
    // The app's handler may have closed or unsubscribed the connection.
    if (this.#topics.get(topic)?.get(connection) !== state) return fresh.length;
    for (const entry of fresh) {
      send(entry);
      state.floor = entry.id;
    }
    const held = state.held;
    state.held = null;
    let passed = false;
    for (const entry of held) {
      if (compareStreamIds(entry.id, state.floor) <= 0) continue;
      this.#sink.sendFrames(connection, entry.message);
      state.floor = entry.id;
      passed = true;
    }
    if (passed) this.forget(topic, connection);
    return fresh.length;
  }

  forget(topic: string, connection: C): void {
    const recovering = this.#topics.get(topic);
    if (recovering === undefined || !recovering.delete(connection)) return;
    if (recovering.size === 0) this.#topics.delete(topic);
  }
}
