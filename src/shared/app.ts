import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { DetailedPeerCertificate } from 'node:tls';
import type { Logger } from 'pino';
import type { HandshakeStatus } from './errors.ts';

/**
 * The app API. A user writes one module whose default export is `defineApp({...})`; every worker
 * loads it. Handlers are shaped like uWebSockets.js and Bun's: a plain object of callbacks with
 * per-connection `data` attached at upgrade time.
 */

/** What `send()` did: handed to the socket, queued behind a slow socket, or dropped by policy. */
export type SendStatus = 'written' | 'buffered' | 'dropped';

/** Control frames always go first; under pressure `low` messages are dropped first. */
export type Priority = 'high' | 'normal' | 'low';

/**
 * What `send`, `sendFragment` and `publish` take. Strings are encoded; bytes that wait (behind a
 * slow socket, for zlib, as a fragment or a publish) are copied before the call returns. A
 * buffer over 2 KiB that `send` writes at once goes to the socket as it is, as Node's
 * `socket.write` takes it: the caller leaves it unchanged until the socket has it
 * (`bufferedAmount` back to 0), or sends a copy.
 */
export type MessageData = string | Uint8Array | ArrayBuffer;

/** The bytes of a message as a Buffer: strings encoded as UTF-8, binary data viewed, not copied. */
export function messageBytes(data: MessageData): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Whether `data` goes out as a binary message: as the sender said, else binary unless it is a string. */
export const sendsBinary = (data: MessageData, binary: boolean | undefined): boolean => binary ?? typeof data !== 'string';

/**
 * The bytes of `data` in a Uint8Array of their own, for a message that crosses threads:
 * posting a view would clone its whole backing buffer, and the sender may reuse it.
 */
export function exactCopy(data: MessageData): Uint8Array {
  return typeof data === 'string' ? new Uint8Array(Buffer.from(data)) : new Uint8Array(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
}

export interface SendOptions {
  /** Send as a binary message; defaults to binary for buffers and text for strings. */
  readonly binary?: boolean;
  /** Compress with permessage-deflate when negotiated (default true, above the threshold). */
  readonly compress?: boolean;
  readonly priority?: Priority;
}

/**
 * A piece of a message sent as its data is produced (`sendFragment`). `binary`, `compress` and
 * `priority` are read from the first fragment of a message, for the whole message; `compress`
 * defaults to whether that first fragment reaches the threshold.
 */
export interface FragmentOptions extends SendOptions {
  /** Whether this is the last fragment of the message (RFC 6455 §5.4: the FIN bit). */
  readonly fin: boolean;
}

/** `publish` options: how to send, and (streams mode) whether to resolve to the message's id. */
export interface PublishOptions extends SendOptions {
  /**
   * Streams mode (`redisBridge({ mode: 'streams' })`): `publish` returns a Promise of the
   * message's id, resolved once Redis has appended it; it rejects when the message is dropped
   * (past the outage buffer) or when there are no ids (no streams bridge).
   */
  readonly withId?: boolean;
}

export interface SubscribeOptions {
  /**
   * Recovery (streams mode): the id of the last message of this topic the client has seen.
   * Every message after it that the stream still holds is sent first, in order, then live ones,
   * none twice; `App.recovery` says beforehand how many, and whether some are gone. Only a new
   * subscription recovers: on a topic the connection already has, subscribe does nothing.
   */
  readonly since?: string;
}

/** What `ws.subscribe(topic, { since })` found, told to `App.recovery` before those messages are sent. */
export interface Recovery {
  readonly topic: string;
  readonly since: string;
  /** Messages after `since` about to be sent, before any live one. */
  readonly replayed: number;
  /**
   * Every message after `since` is among them. False when the stream no longer holds some (they
   * were older than its retention, or Redis lost its data), or without a streams bridge: the
   * client should reload its state.
   */
  readonly complete: boolean;
}

/** What the topic bridge tells the app (`App.bridge`), on every worker. */
export type BridgeNotice =
  /** The broker is unreachable: plain mode drops cross-server publishes, streams mode buffers them. */
  | { readonly type: 'down' }
  | { readonly type: 'up' }
  /** Streams mode: publishes waiting for the broker were dropped, oldest first, past the outage buffer. */
  | { readonly type: 'dropped'; readonly count: number; readonly topics: readonly string[] };

export const ReadyState = { Connecting: 0, Open: 1, Closing: 2, Closed: 3 } as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];

/**
 * What became of a message (or close) for a connection named by id: done here (a SendStatus,
 * or 'closing'), handed to the worker or server that holds it ('forwarded': it reports nothing
 * back), or 'gone': no such connection is open where the id says it lives.
 */
export type Delivery = 'forwarded' | 'gone';

/** Options of a count that may reach beyond this server. */
export interface CountOptions {
  /** `server` (default): every worker of this server, read from shared memory. `cluster`: every server, from the bridge. */
  readonly scope?: 'server' | 'cluster';
}

/** One connection of a worker, for admin tools (`shard.connections()`). */
export interface ConnectionInfo {
  readonly id: string;
  readonly remoteAddress: string;
  readonly tags: readonly string[];
  readonly topics: readonly string[];
  readonly bufferedAmount: number;
  /** When it opened (ms since the epoch). */
  readonly openedAt: number;
}

/** The worker a handler runs on, and what it can do beyond one connection. */
export interface Shard {
  /** 0-based worker index, and how many workers serve. */
  readonly id: number;
  readonly count: number;
  readonly logger: Logger;
  /** Sends to every subscriber of `topic` on every worker (and server, with a bridge). */
  publish(topic: string, data: MessageData, options: PublishOptions & { readonly withId: true }): Promise<string>;
  publish(topic: string, data: MessageData, options?: PublishOptions): void;
  /**
   * Connections subscribed to `topic` on every worker of this server: read from shared memory,
   * exact once a subscribe or unsubscribe has returned. With `{ scope: 'cluster' }`, a promise
   * of the count on every server of the cluster directory.
   */
  subscriberCount(topic: string): number;
  subscriberCount(topic: string, options: { readonly scope: 'cluster' }): Promise<number>;
  subscriberCount(topic: string, options?: CountOptions): number | Promise<number>;
  /** Sends to the connection with this id, on whatever worker (or, with a bridge, server) holds it. */
  send(id: string, data: MessageData, options?: SendOptions): SendStatus | Delivery;
  /** Closes the connection with this id, wherever it is (a revoked session). */
  close(id: string, code?: number, reason?: string): 'closing' | Delivery;
  /** Sends to every connection tagged `key` (`ws.tag(key)`) on every worker and server. */
  sendTo(key: string, data: MessageData, options?: SendOptions): void;
  /** Closes every connection tagged `key`, everywhere. */
  closeAll(key: string, code?: number, reason?: string): void;
  /** This worker's connections. */
  connections(): ConnectionInfo[];
  /** Open connections on every worker of this server; `{ scope: 'cluster' }`: a promise of the count on every server. */
  connectionCount(): number;
  connectionCount(options: { readonly scope: 'cluster' }): Promise<number>;
  connectionCount(options?: CountOptions): number | Promise<number>;
  /** Live counters of every worker (connections, messages, bytes...). */
  stats(): WorkerStats[];
}

export interface WorkerStats {
  readonly worker: number;
  readonly connections: number;
  readonly handshakes: number;
  readonly bufferedBytes: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly backpressureEvents: number;
  readonly drops: number;
}

export interface ServerWebSocket<T = unknown> {
  /** Unique across the workers and servers of a cluster; `shard.send(id)` reaches it from anywhere. */
  readonly id: string;
  /** Whatever `upgrade` attached. */
  data: T;
  readonly remoteAddress: string;
  readonly protocol: string;
  readonly extensions: string;
  /** Bytes accepted by send() and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  readonly readyState: ReadyState;
  readonly shard: Shard;
  /** Sends one message; `data` is the caller's again when this returns (MessageData). */
  send(data: MessageData, options?: SendOptions): SendStatus;
  /**
   * Sends a message in pieces as its data is produced (a file, a token stream): the first call
   * starts it, the one with `fin: true` ends it. Messages sent meanwhile (send, publish) wait
   * for the last fragment; pings, pongs and a close do not (RFC 6455 §5.4). A fragment of a
   * message already on the wire is never dropped by the slow-client policy: past
   * maxBackpressure the connection is closed with 1008 instead, unless the policy queues it.
   */
  sendFragment(data: MessageData, options: FragmentOptions): SendStatus;
  ping(data?: MessageData): void;
  /** Sends a pong (unsolicited, or the answer to a ping when autoPong is off). */
  pong(data?: MessageData): void;
  /** Starts the close handshake (RFC 6455 §7.1.2). */
  close(code?: number, reason?: string): void;
  /** Destroys the TCP connection at once, without a close handshake. */
  terminate(): void;
  /** `since`: recover what the client missed (streams mode; see SubscribeOptions). */
  subscribe(topic: string, options?: SubscribeOptions): void;
  unsubscribe(topic: string): void;
  isSubscribed(topic: string): boolean;
  readonly topics: readonly string[];
  /** Sends to every subscriber of `topic` on every worker (and server) except this connection. */
  publish(topic: string, data: MessageData, options: PublishOptions & { readonly withId: true }): Promise<string>;
  publish(topic: string, data: MessageData, options?: PublishOptions): void;
  /** Adds an app-defined key (a user id, a session): `shard.sendTo(key)` and `closeAll(key)` reach it. */
  tag(key: string): void;
  untag(key: string): void;
  readonly tags: readonly string[];
}

/** The TLS side of a wss:// upgrade: the name the client asked for, and its certificate (mTLS). */
export interface TlsPeer {
  /** The SNI server name the client sent, or null. */
  readonly servername: string | null;
  /** Whether the client's certificate was verified against `tls.ca` (false without one). */
  readonly authorized: boolean;
  /** Why it was not, when it sent one (`rejectUnauthorized: false` lets such clients reach upgrade). */
  readonly authorizationError: string | null;
  /** The client's certificate (`tls.requestCert`), with its issuer chain; null when it sent none. */
  readonly peerCertificate: DetailedPeerCertificate | null;
}

export interface UpgradeRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The client's address: from the PROXY protocol header when `proxyProtocol` is on. */
  readonly remoteAddress: string;
  /** Subprotocols the client offered, in its order of preference. */
  readonly protocols: readonly string[];
  /** Present on a wss:// listener. */
  readonly tls: TlsPeer | null;
  readonly raw: IncomingMessage;
}

/** Extra response headers; entries whose value is undefined are left out. */
export type ResponseHeaders = Readonly<Record<string, string | undefined>>;

/** Accepts the upgrade. */
export interface UpgradeAccept<T> {
  readonly data?: T;
  /** One of `protocols`; by default the client's first offer is not chosen (none is). */
  readonly protocol?: string;
  readonly headers?: ResponseHeaders;
}

/** Refuses the upgrade with an HTTP status. */
export interface UpgradeRejection {
  readonly reject: HandshakeStatus;
  readonly message?: string;
  readonly headers?: ResponseHeaders;
}

/**
 * Where a proxied connection goes (`upgrade` returns `{ proxy }`): shardws opens its own
 * WebSocket to an upstream and relays messages between the two (`message` mode), or relays the
 * upstream's 101 and then copies bytes both ways (`passthrough`).
 */
export interface ProxyTarget {
  /** ws:// or wss:// URL of the upstream (path and query included), or several to balance over. */
  readonly url: string | readonly string[];
  /** Extra request headers for the upstream (the client's own end-to-end headers are forwarded). */
  readonly headers?: ResponseHeaders;
  /** Subprotocols offered to the upstream; default: what the client offered. */
  readonly protocols?: readonly string[];
  /**
   * `message` (default): both legs are WebSocket connections of their own, the client's with
   * the server's permessage-deflate, the upstream's with `deflate`. `passthrough`: after the
   * upstream's 101, bytes are copied both ways; extensions are negotiated end to end.
   */
  readonly mode?: 'message' | 'passthrough';
  /** How several upstreams share connections (default least-connections, per worker). */
  readonly balance?: 'least-connections' | 'round-robin';
  /** Sends every connection with the same key to the same upstream while it is up (rendezvous hashing). */
  readonly sticky?: string;
  /** Seconds the upstream has to answer the upgrade with its 101 (default 10): past it, 504. */
  readonly timeout?: number;
  /** Offer permessage-deflate to the upstream in message mode (default false: plain messages). */
  readonly deflate?: boolean;
  /** For wss:// upstreams: CA certificates (PEM), and whether to verify them (default true). */
  readonly tls?: { readonly ca?: string | readonly string[]; readonly rejectUnauthorized?: boolean; readonly servername?: string };
}

/** Hands the connection to an upstream server. */
export interface UpgradeProxy {
  readonly proxy: ProxyTarget;
}

export type UpgradeResult<T> = UpgradeAccept<T> | UpgradeRejection | UpgradeProxy | void;

/** What the `custom` slow-client policy decides for a message that would pass maxBackpressure. */
export type SlowClientDecision = 'drop' | 'close' | 'queue';

/** Why the slow-client policy is asked: a message over maxBackpressure, or a backlog older than slowClientTimeout. */
export type SlowClientCause = 'backpressure' | 'timeout';

/**
 * `T`: the per-connection `data` upgrade attaches; `O`: the `appOptions` given to listen()
 * (`--app-options`), handed to `start` in every worker.
 */
export interface App<T = unknown, O = unknown> {
  /**
   * Once per worker, before it takes connections. The module is loaded once per worker, so
   * module state is per worker; `options` is that worker's copy of `appOptions`.
   */
  start?(shard: Shard, options: O): void | Promise<void>;
  /** Once per worker on shutdown, after connections are closed. */
  stop?(shard: Shard): void | Promise<void>;
  upgrade?(req: UpgradeRequest, shard: Shard): UpgradeResult<T> | Promise<UpgradeResult<T>>;
  open?(ws: ServerWebSocket<T>): void;
  /** `data` stays valid after the handler returns; text is UTF-8 (checked). */
  message?(ws: ServerWebSocket<T>, data: Buffer, isBinary: boolean): void;
  /** Buffered data fell below the low water mark. */
  drain?(ws: ServerWebSocket<T>): void;
  close?(ws: ServerWebSocket<T>, code: number, reason: string): void;
  /**
   * A connection subscribed to `topic` or left it (unsubscribe, or its close): the topic's
   * subscriber count on every worker after (`newCount`) and before (`oldCount`) the change.
   */
  subscription?(ws: ServerWebSocket<T>, topic: string, newCount: number, oldCount: number): void;
  /** A ping arrived; it was answered already, unless the server runs with `autoPong: false`. */
  ping?(ws: ServerWebSocket<T>, data: Buffer): void;
  pong?(ws: ServerWebSocket<T>, data: Buffer): void;
  /**
   * A message was not sent because of backpressure: the slow-client policy dropped it, a
   * low-priority message was dropped to make room, or `slowClientTimeout` dropped the backlog.
   * `data` is a copy of the message's bytes.
   */
  dropped?(ws: ServerWebSocket<T>, data: Buffer, isBinary: boolean): void;
  /**
   * `upgrade` accepted this request, but the connection never opened: the client went away
   * before the 101 could be written, or the response could not be built. Release here what
   * `upgrade` allocated for `data`; `open` and `close` will not run for it.
   */
  upgradeAborted?(req: UpgradeRequest, data: T | undefined, reason: string): void;
  /** Plain HTTP requests (not upgrades); without it they get 426. */
  http?(req: IncomingMessage, res: ServerResponse, shard: Shard): void;
  /**
   * Decides for the `custom` slow-client policy: `cause` 'backpressure' for a message that would
   * pass maxBackpressure (of `priority`), 'timeout' for a connection backlogged longer than
   * slowClientTimeout ('drop' then drops what waits, 'queue' waits another slowClientTimeout).
   */
  slowClient?(ws: ServerWebSocket<T>, bufferedAmount: number, priority: Priority, cause: SlowClientCause): SlowClientDecision;
  /**
   * Streams mode: the message a topic's subscribers get for the entry `id`; put the id where
   * your client reads it (it is what the client gives back as `since`). Runs once per message on
   * each worker that has subscribers, for live and replayed messages alike; without it they get
   * `data` as published.
   */
  stamp?(topic: string, id: string, data: Buffer, isBinary: boolean): MessageData;
  /** After `ws.subscribe(topic, { since })`: what will be replayed, told before it is sent. */
  recovery?(ws: ServerWebSocket<T>, recovery: Recovery): void;
  /** The topic bridge's news: the broker went away or came back, publishes were dropped. */
  bridge?(notice: BridgeNotice, shard: Shard): void;
}

/** Types an app module; returns it unchanged. */
export function defineApp<T = undefined, O = unknown>(app: App<T, O>): App<T, O> {
  return app;
}

export const isRejection = <T>(result: UpgradeResult<T>): result is UpgradeRejection =>
  typeof result === 'object' && result !== null && 'reject' in result;

export const isProxy = <T>(result: UpgradeResult<T>): result is UpgradeProxy =>
  typeof result === 'object' && result !== null && 'proxy' in result;
