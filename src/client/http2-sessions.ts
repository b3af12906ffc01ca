/**
 * The HTTP/2 connections WebSockets over HTTP/2 (RFC 8441) share: one TLS connection per origin
 * (and TLS settings), opened by the first WebSocket that asks, reused by the next ones while it
 * is open, as browsers pool theirs; another one when every open one carries as many streams as its
 * server allows (SETTINGS_MAX_CONCURRENT_STREAMS), so a WebSocket never waits for a free stream.
 * A connection is usable once the server's SETTINGS said
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

/**
 * Streams a connection is given before the server's SETTINGS say its limit: RFC 9113 §6.5.2
 * recommends servers allow at least 100 (shardws's http2MaxStreams default).
 */
const ASSUMED_MAX_STREAMS = 100;

export type SessionCallback = (error: Error | null, session?: ClientHttp2Session) => void;

interface Pooled {
  readonly session: ClientHttp2Session;
  /** Callers waiting for the server's first SETTINGS. */
  waiting: Waiter[] | null;
  /** Callers given this connection that have not opened their stream yet. */
  promised: number;
  streams: number;
  idle: NodeJS.Timeout | null;
}

/** A caller waiting for a connection's SETTINGS: told the outcome, or sent to another connection past its stream limit. */
interface Waiter {
  readonly deliver: SessionCallback;
  readonly reroute: () => void;
}

export class Http2SessionPool {
  readonly #pooled = new Map<string, Pooled[]>();

  /** Open connections, for tests and stats. */
  get size(): number {
    let size = 0;
    for (const list of this.#pooled.values()) size += list.length;
    return size;
  }

  /**
   * Calls back once with a connection to `url`'s origin that takes extended CONNECT, opening one
   * if none is open; never synchronously. The caller counts its stream in with `opened`.
   */
  session(url: URL, tls: ClientTlsOptions, callback: SessionCallback): PendingTransport {
    const key = poolKey(url, tls);
    let live = true;
    let entry: Pooled;
    const attach = (): void => {
      const target = this.#pooled.get(key)?.find(hasRoom) ?? this.#open(key, url, tls);
      entry = target;
      target.promised++;
      const deliver: SessionCallback = (error, session) => {
        if (!live || entry !== target) return;
        live = false;
        // The caller opens its stream (opened()) within this call, or gives the place up.
        target.promised--;
        callback(error, session);
      };
      if (target.waiting === null) setImmediate(() => deliver(null, target.session));
      else
        target.waiting.push({
          deliver,
          reroute: () => {
            target.promised--;
            if (live && entry === target) attach();
          },
        });
    };
    attach();
    return {
      abort: () => {
        if (live) entry.promised--;
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
    for (const list of this.#pooled.values()) for (const pooled of list) pooled.session.close();
  }

  #find(session: ClientHttp2Session): Pooled | undefined {
    for (const list of this.#pooled.values()) for (const pooled of list) if (pooled.session === session) return pooled;
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
    const pooled: Pooled = { session, waiting: [], promised: 0, streams: 0, idle: null };
    const list = this.#pooled.get(key);
    if (list === undefined) this.#pooled.set(key, [pooled]);
    else list.push(pooled);
    const settle = (error: Error | null): void => {
      const waiting = pooled.waiting;
      pooled.waiting = null;
      if (waiting === null) return;
      const limit = session.remoteSettings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS;
      for (const waiter of waiting) {
        // More callers came while the SETTINGS were on their way than the server allows streams.
        if (error === null && pooled.streams >= limit) waiter.reroute();
        else waiter.deliver(error, error === null ? session : undefined);
      }
    };
    const forget = (): void => {
      const list = this.#pooled.get(key);
      const at = list?.indexOf(pooled) ?? -1;
      if (at >= 0) list!.splice(at, 1);
      if (list?.length === 0) this.#pooled.delete(key);
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

/** Whether a connection can take one more WebSocket: open, and under its server's stream limit. */
function hasRoom(pooled: Pooled): boolean {
  const { session } = pooled;
  if (session.closed || session.destroyed) return false;
  // Before its SETTINGS, a connection is assumed to allow the common minimum; settle() moves the
  // callers past the real limit to another connection.
  const limit = pooled.waiting !== null ? ASSUMED_MAX_STREAMS : (session.remoteSettings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS);
  return pooled.streams + pooled.promised < limit;
}

/** Connections are shared only between WebSockets with the same origin and the same TLS settings. */
function poolKey(url: URL, tls: ClientTlsOptions): string {
  const settings = JSON.stringify(tls, (_name, value: unknown) => (Buffer.isBuffer(value) ? value.toString('base64') : value));
  return `${url.host}|${createHash('sha256').update(settings).digest('base64')}`;
}

/** The process's pool: every WebSocket with `http2: true` and the load generator use it. */
export const http2Sessions = new Http2SessionPool();
