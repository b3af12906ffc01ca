/**
 * The HTTP/2 connections WebSockets over HTTP/2 (RFC 8441) share: one TLS connection per origin
 * (and TLS settings), opened by the first WebSocket that asks, reused by the next ones while it
 * is open, as browsers pool theirs. A connection is usable once the server's SETTINGS said
 * ENABLE_CONNECT_PROTOCOL (RFC 8441 §3: no extended CONNECT before it); one that carries no
 * stream lets the process exit, and closes after IDLE_MS. The client and `shardws bench` both
 * open their WebSockets here.
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import type { ClientTlsOptions } from './client-options.ts';
import { endpointOf, serverNameFor } from './transport.ts';
import type { PendingTransport } from './transport.ts';

/** How long an HTTP/2 connection with no WebSocket on it stays open for the next one. */
const IDLE_MS = 5000;

export type SessionCallback = (error: Error | null, session?: ClientHttp2Session) => void;

interface Pooled {
  readonly session: ClientHttp2Session;
  /** Callers waiting for the server's first SETTINGS. */
  waiting: SessionCallback[] | null;
  streams: number;
  idle: NodeJS.Timeout | null;
}

export class Http2SessionPool {
  readonly #pooled = new Map<string, Pooled>();

  /** Open connections, for tests and stats. */
  get size(): number {
    return this.#pooled.size;
  }

  /**
   * Calls back once with a connection to `url`'s origin that takes extended CONNECT, opening one
   * if none is open; never synchronously. The caller counts its stream in with `opened`.
   */
  session(url: URL, tls: ClientTlsOptions, callback: SessionCallback): PendingTransport {
    const key = poolKey(url, tls);
    let pooled = this.#pooled.get(key);
    if (pooled === undefined || pooled.session.closed || pooled.session.destroyed) pooled = this.#open(key, url, tls);
    const entry = pooled;
    let live = true;
    const once: SessionCallback = (error, session) => {
      if (!live) return;
      live = false;
      callback(error, session);
    };
    if (entry.waiting === null) setImmediate(() => once(null, entry.session));
    else entry.waiting.push(once);
    return {
      abort: () => {
        live = false;
      },
    };
  }

  /** A stream of `session` opened: the connection stays while any is open. */
  opened(session: ClientHttp2Session, stream: { once(event: 'close', listener: () => void): unknown }): void {
    const pooled = this.#find(session);
    if (pooled === undefined) return;
    pooled.streams++;
    if (pooled.idle !== null) clearTimeout(pooled.idle);
    pooled.idle = null;
    session.ref();
    stream.once('close', () => {
      if (--pooled.streams > 0 || session.closed) return;
      // Nothing on it: it no longer holds the process open, and closes unless reused soon.
      session.unref();
      pooled.idle = setTimeout(() => session.close(), IDLE_MS);
      pooled.idle.unref();
    });
  }

  /** Closes every connection (GOAWAY); open streams finish first. */
  closeAll(): void {
    for (const pooled of this.#pooled.values()) pooled.session.close();
  }

  #find(session: ClientHttp2Session): Pooled | undefined {
    for (const pooled of this.#pooled.values()) if (pooled.session === session) return pooled;
    return undefined;
  }

  #open(key: string, url: URL, tls: ClientTlsOptions): Pooled {
    const endpoint = endpointOf(url);
    const session = connect(`https://${url.host}`, {
      ...tls,
      host: endpoint.host,
      port: endpoint.port,
      servername: serverNameFor(endpoint.host, tls),
      ALPNProtocols: ['h2'],
    });
    const pooled: Pooled = { session, waiting: [], streams: 0, idle: null };
    this.#pooled.set(key, pooled);
    const settle = (error: Error | null): void => {
      const waiting = pooled.waiting;
      pooled.waiting = null;
      if (waiting !== null) for (const callback of waiting) callback(error, error === null ? session : undefined);
    };
    const forget = (): void => {
      if (this.#pooled.get(key) === pooled) this.#pooled.delete(key);
      if (pooled.idle !== null) clearTimeout(pooled.idle);
    };
    session.once('remoteSettings', (settings) => {
      if (settings.enableConnectProtocol === true) {
        settle(null);
        return;
      }
      forget();
      session.close();
      settle(new Error(`${url.host} does not take WebSockets over HTTP/2: its SETTINGS lack ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)`));
    });
    session.on('error', (error: Error) => {
      forget();
      settle(new Error(`HTTP/2 connection to ${url.host}: ${error.message}`, { cause: error }));
    });
    // No new streams after GOAWAY: the next WebSocket opens a new connection.
    session.on('goaway', forget);
    session.on('close', () => {
      forget();
      settle(new Error(`HTTP/2 connection to ${url.host} closed before its SETTINGS`));
    });
    return pooled;
  }
}

/** Connections are shared only between WebSockets with the same origin and the same TLS settings. */
function poolKey(url: URL, tls: ClientTlsOptions): string {
  const settings = JSON.stringify(tls, (_name, value: unknown) => (Buffer.isBuffer(value) ? value.toString('base64') : value));
  return `${url.host}|${createHash('sha256').update(settings).digest('base64')}`;
}

/** The process's pool: every WebSocket with `http2: true` and the load generator use it. */
export const http2Sessions = new Http2SessionPool();
