/**
 * maxLifetime: a connection older than it is closed with 1001 so that its client reconnects and
 * lands wherever the balancer now puts it; after a worker restart or a scale-up, balancing only
 * places new connections, and long-lived ones would otherwise stay where they were for good.
 * Each connection's limit is shortened by a random part of up to JITTER, so the connections
 * opened in one burst (a restart's reconnections) are not all closed in the same second.
 */
import { CloseCode } from '../shared/close.ts';

/** Share of maxLifetime by which a connection's own limit may be shorter. */
export const JITTER = 0.2;

/** A connection as the sweep sees it. */
export interface Aging {
  close(code: number, reason: string): void;
}

export class LifetimeSweep<C extends Aging> {
  readonly #connections: Iterable<C>;
  readonly #openedAt: (connection: C) => number;
  readonly #lifetimeMs: number;
  readonly #random: () => number;
  /** Each connection's deadline, drawn the first time the sweep sees it. */
  readonly #deadlines = new WeakMap<C, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(connections: Iterable<C>, openedAt: (connection: C) => number, maxLifetimeSeconds: number, random: () => number = Math.random) {
    this.#connections = connections;
    this.#openedAt = openedAt;
    this.#lifetimeMs = maxLifetimeSeconds * 1000;
    this.#random = random;
  }

  start(): void {
    if (this.#timer !== null || this.#lifetimeMs <= 0) return;
    // A tenth of the lifetime between sweeps, at most a second: the limit holds to within that.
    this.#timer = setInterval(() => this.sweep(Date.now()), Math.max(50, Math.min(1000, this.#lifetimeMs / 10)));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Closes the connections past their deadline at `now`; returns how many. */
  sweep(now: number): number {
    let closed = 0;
    for (const connection of this.#connections) {
      let deadline = this.#deadlines.get(connection);
      if (deadline === undefined) {
        deadline = this.#openedAt(connection) + this.#lifetimeMs * (1 - JITTER * this.#random());
        this.#deadlines.set(connection, deadline);
      }
      if (now >= deadline) {
        connection.close(CloseCode.GoingAway, 'connection lifetime reached');
        closed++;
      }
    }
    return closed;
  }
}
