/**
 * The idle timeout of a worker's connections: a peer that sends nothing for `idleTimeout` is
 * closed with 1001, and (with `sendPings`) pinged halfway there, so a live peer whose app is
 * merely quiet answers in time. One timer per worker walks every connection a few times per
 * timeout; a connection only stamps the sweep's tick when it reads, which costs one store.
 */
import type { Logger } from 'pino';
import { CloseCode } from '../shared/close.ts';

/** A connection as the sweep sees it. */
export interface IdleWatched {
  readonly remoteAddress: string;
  ping(): void;
  close(code: number, reason: string): void;
}

export interface IdleSettings {
  readonly idleTimeoutMs: number;
  readonly sendPings: boolean;
  readonly logger: Logger;
}

export class IdleSweep<C extends IdleWatched> {
  readonly #connections: Iterable<C>;
  readonly #lastActive: (connection: C) => number;
  readonly #settings: IdleSettings;
  readonly #period: number;
  /** Sweeps of silence after which a connection is closed, and after which it is pinged. */
  readonly #closeAfter: number;
  readonly #pingAfter: number;
  #timer: NodeJS.Timeout | null = null;
  /** Sweeps so far: connections stamp it when they read (see `lastActive`). */
  tick = 0;

  /** `lastActive` reads the tick a connection stamped at its last read. */
  constructor(connections: Iterable<C>, lastActive: (connection: C) => number, settings: IdleSettings) {
    this.#connections = connections;
    this.#lastActive = lastActive;
    this.#settings = settings;
    const idle = settings.idleTimeoutMs;
    this.#period = Math.max(50, Math.min(1000, Math.floor(idle / 4)));
    this.#closeAfter = Math.ceil(idle / this.#period);
    this.#pingAfter = Math.ceil(this.#closeAfter / 2);
  }

  start(): void {
    if (this.#timer !== null || this.#settings.idleTimeoutMs <= 0) return;
    this.#timer = setInterval(() => this.sweep(), this.#period);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One pass: closes connections silent for the whole timeout, pings those silent for half. */
  sweep(): void {
    const tick = ++this.tick;
    const { sendPings, logger } = this.#settings;
    for (const connection of this.#connections) {
      const silent = tick - this.#lastActive(connection);
      if (silent >= this.#closeAfter) {
        logger.debug({ remote: connection.remoteAddress }, 'idle timeout; closing with 1001');
        connection.close(CloseCode.GoingAway, 'idle timeout');
      } else if (sendPings && silent === this.#pingAfter) {
        // Once per silence: the count passes pingAfter exactly once before the next read resets it.
        connection.ping();
      }
    }
  }
}
