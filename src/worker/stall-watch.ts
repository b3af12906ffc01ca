/**
 * slowClientTimeout: a connection that stays backlogged (a send said 'buffered', or messages
 * wait in its queue, and it has not drained to lowWaterMark) for longer than the timeout meets
 * the slow-client policy, however little it holds: a client that reads nothing at all would
 * otherwise keep its backlog until maxBackpressure is reached, which a quiet feed may never do.
 * One timer per worker walks only the backlogged connections, which a healthy worker has few of.
 */
import { kBackloggedSince, kStalled } from './connection.ts';
import type { Connection } from './connection.ts';

export class StallWatch {
  readonly #backlogged: ReadonlySet<Connection>;
  readonly #timeoutMs: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(backlogged: ReadonlySet<Connection>, timeoutMs: number) {
    this.#backlogged = backlogged;
    this.#timeoutMs = timeoutMs;
  }

  start(): void {
    if (this.#timer !== null || this.#timeoutMs <= 0) return;
    // A check every quarter of the timeout (at most once a second): a stall is acted on
    // between 1 and 1.25 timeouts after it began.
    this.#timer = setInterval(() => this.check(Date.now()), Math.max(10, Math.min(1000, this.#timeoutMs / 4)));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Hands every connection backlogged since `now - timeout` or earlier to its policy. */
  check(now: number): void {
    const deadline = now - this.#timeoutMs;
    let stalled: Connection[] | null = null;
    for (const connection of this.#backlogged) {
      const since = connection[kBackloggedSince];
      if (since !== null && since <= deadline) (stalled ??= []).push(connection);
    }
    // Acting changes the set (a dropped backlog, a closed connection): walk a copy.
    if (stalled !== null) for (const connection of stalled) connection[kStalled]();
  }
}
