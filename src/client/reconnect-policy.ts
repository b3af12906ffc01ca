/**
 * When a lost client connection is retried, and after how long: exponential backoff with
 * jitter, and the default rule that tells a passing failure (a dropped network, a restarting
 * server) from one that would only repeat itself (a refused login, a protocol violation).
 */
import { CloseCode } from '../shared/close.ts';
import { HandshakeError, ProtocolError } from '../shared/errors.ts';
import { UnexpectedResponseError } from './client-errors.ts';

/** How a connection (or an attempt to open one) ended, as `shouldReconnect` sees it. */
export interface Disconnect {
  /** The close event's code: the server's close code, or 1006 when the connection was lost or never opened. */
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  /** The error reported in the `error` event before this close, if any (UnexpectedResponseError for a refused upgrade). */
  readonly error: Error | null;
}

/**
 * Close codes that say "try again": 1001 going away (a server shutting down, shardws's idle
 * timeout), 1005 (a close frame without a code), 1006 (lost without a close frame), 1011 server
 * error, 1012 service restart, 1013 try again later, 1014 bad gateway (RFC 6455 §7.4.1 and the
 * IANA registry). Not retried: 1000 (the server ended the session on purpose), 1002, 1003,
 * 1007, 1009, 1010 (retrying would repeat the same exchange), 1008 (policy: typically
 * authorization; shardws also closes slow clients with it) and the application's 3000–4999.
 */
const TRANSIENT_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.GoingAway,
  CloseCode.NoStatus,
  CloseCode.Abnormal,
  CloseCode.InternalError,
  CloseCode.ServiceRestart,
  CloseCode.TryAgainLater,
  CloseCode.BadGateway,
]);

/**
 * isTransientDisconnect is the default `shouldReconnect`. A refused upgrade is retried only for
 * statuses that promise a different answer later (408, 425, 429 and 5xx, from the server or
 * the proxy); a response that breaks RFC 6455 §4.1 and a protocol error from the server are not
 * retried. Network failures (refused, reset, timed out, TLS) are, as are the codes above.
 */
export function isTransientDisconnect(disconnect: Disconnect): boolean {
  const { error } = disconnect;
  if (error instanceof UnexpectedResponseError) {
    const { status } = error;
    return status === 408 || status === 425 || status === 429 || status >= 500;
  }
  if (error instanceof HandshakeError || error instanceof ProtocolError) return false;
  return TRANSIENT_CLOSE_CODES.has(disconnect.code);
}

export interface Backoff {
  readonly minDelay: number;
  readonly maxDelay: number;
  readonly jitter: number;
}

/**
 * reconnectDelay gives the seconds to wait before attempt `step` (1, 2, …) of a run of
 * failures: minDelay doubled per step up to maxDelay, less a random part of up to `jitter` of
 * it, so that the clients of one restarted server do not all return in the same instant.
 */
export function reconnectDelay(step: number, backoff: Backoff, random: () => number = Math.random): number {
  // The exponent stops growing long after maxDelay is reached, so no run of failures overflows it.
  const base = Math.min(backoff.maxDelay, backoff.minDelay * 2 ** Math.min(step - 1, 64));
  return base * (1 - backoff.jitter * random());
}
