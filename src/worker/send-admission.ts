/**
 * Send admission: what happens to a message a connection is asked to send, decided in one place
 * for `ws.send`, broadcasts and queued messages alike. It goes to the socket now, waits in the
 * connection's queue behind a slow socket, or meets the slow-client policy when it would take
 * the connection past `maxBackpressure`. The policies are strategies below, one per
 * `slowClient` option value.
 */
import type { Logger } from 'pino';
import type { App, Priority, ServerWebSocket, SlowClientCause, SlowClientDecision } from '../shared/app.ts';
import type { SlowClientPolicy as SlowClientOption } from '../shared/config.ts';

/** The water marks and the limit admission applies, from the server config. */
export interface SendLimits {
  /** At or above this many buffered bytes messages wait in the queue (and `send` says 'buffered'). */
  readonly highWaterMark: number;
  /** Bytes that may pile up behind a slow reader before the slow-client policy decides. */
  readonly maxBackpressure: number;
}

/**
 * `write`: to the socket now. `queue`: behind what is buffered. `over-limit`: it would take the
 * connection past maxBackpressure: the slow-client policy decides.
 */
export type Admission = 'write' | 'queue' | 'over-limit';

/**
 * Admits a message of `size` bytes to a connection with `buffered` bytes not yet written, where
 * `waiting` says whether earlier messages still wait (in the queue, or behind a compression):
 * a new one may not overtake them.
 */
export function admit(limits: SendLimits, buffered: number, waiting: boolean, size: number): Admission {
  // The limit is on what piles up behind a slow reader: a message larger than it still goes
  // out on a connection with nothing buffered (as in uWS; Autobahn 9.1.5-9.2.6 echo 8-16 MiB).
  if (buffered > 0 && buffered + size > limits.maxBackpressure) return 'over-limit';
  return waiting || buffered >= limits.highWaterMark ? 'queue' : 'write';
}

/** A message that would pass maxBackpressure, as a slow-client policy sees it. */
export interface OverLimit {
  readonly ws: ServerWebSocket<unknown>;
  readonly buffered: number;
  readonly size: number;
  readonly priority: Priority;
  readonly limit: number;
  /**
   * Drops queued low-priority messages, oldest first, until this one would fit under the
   * limit (or none is left); returns the bytes still buffered.
   */
  dropLowPriority(): number;
}

/** What becomes of a message over the limit: queued anyway, dropped, or the connection closed (1008). */
export type OverLimitVerdict = 'queue' | 'drop' | 'close';

/**
 * What becomes of a connection backlogged for longer than slowClientTimeout: it waits another
 * timeout, what waits is dropped, or it is closed (1008).
 */
export type StalledVerdict = 'wait' | 'drop' | 'close';

/** A slow-client policy: the `slowClient` option. */
export interface SlowClientPolicy {
  overLimit(message: OverLimit): OverLimitVerdict;
  /** `ws` has been backlogged (bufferedAmount above lowWaterMark since a send said 'buffered') for slowClientTimeout. */
  stalled(ws: ServerWebSocket<unknown>, buffered: number): StalledVerdict;
}

/** `close`: a client that falls that far behind is closed with 1008 (the default). */
export const closeSlowClients: SlowClientPolicy = {
  overLimit: () => 'close',
  stalled: () => 'close',
};

/**
 * `drop`: low-priority messages go first, then this one if it still does not fit; a backlog
 * older than slowClientTimeout is dropped. The connection stays.
 */
export const dropForSlowClients: SlowClientPolicy = {
  overLimit(message) {
    if (message.priority === 'low') return 'drop';
    return message.dropLowPriority() + message.size <= message.limit ? 'queue' : 'drop';
  },
  stalled: () => 'drop',
};

/** A custom policy may queue past the limit, but never past this many times it. */
export const CUSTOM_QUEUE_LIMIT_FACTOR = 4;

/**
 * `custom`: the app's `slowClient` handler decides; a handler that throws closes the connection.
 * Without a handler it is the drop policy.
 */
export function appSlowClientPolicy(app: App<unknown>, logger: Logger): SlowClientPolicy {
  const decide = app.slowClient;
  if (decide === undefined) return dropForSlowClients;
  /** The handler's decision; one that throws closes the connection. */
  const ask = (ws: ServerWebSocket<unknown>, buffered: number, priority: Priority, cause: SlowClientCause): SlowClientDecision => {
    try {
      return decide(ws, buffered, priority, cause);
    } catch (error) {
      logger.error({ err: error }, 'slowClient handler threw');
      return 'close';
    }
  };
  return {
    overLimit(message) {
      const decision = ask(message.ws, message.buffered, message.priority, 'backpressure');
      if (decision === 'queue') return message.buffered + message.size > message.limit * CUSTOM_QUEUE_LIMIT_FACTOR ? 'close' : 'queue';
      // 'drop' means what the drop policy does: low-priority messages go before this one.
      return decision === 'drop' ? dropForSlowClients.overLimit(message) : 'close';
    },
    stalled(ws, buffered) {
      const decision = ask(ws, buffered, 'normal', 'timeout');
      return decision === 'queue' ? 'wait' : decision;
    },
  };
}

/** The strategy for a `slowClient` option value. */
export function slowClientPolicy(option: SlowClientOption, app: App<unknown>, logger: Logger): SlowClientPolicy {
  switch (option) {
    case 'close':
      return closeSlowClients;
    case 'drop':
      return dropForSlowClients;
    case 'custom':
      return appSlowClientPolicy(app, logger);
  }
}
