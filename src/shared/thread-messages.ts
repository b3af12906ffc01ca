import type { Socket } from 'node:net';
import type { MessagePort } from 'node:worker_threads';
import type { BridgeNotice, Priority } from './app.ts';
import type { ServerConfig, TlsOptions } from './config.ts';

/** What a worker is started with (workerData). */
export interface WorkerInit {
  readonly id: number;
  readonly generation: number;
  readonly config: ServerConfig;
  readonly counters: SharedArrayBuffer;
  readonly pool: SharedArrayBuffer;
  /** The PresenceTable: subscribers and tags counted per worker. */
  readonly presence: SharedArrayBuffer;
  /** This server's part of every connection id (unique across the servers of a cluster). */
  readonly serverId: string;
  /** Where sockets come from: the primary, or (Node < 26.6) the worker's own listener. */
  readonly accept: AcceptSource;
}

export type AcceptSource =
  | { readonly mode: 'transfer' }
  | { readonly mode: 'reuseport'; readonly port: number; readonly host: string | undefined; readonly backlog: number };

/** Primary → worker, over the worker's own port. */
export type PrimaryMessage =
  | { readonly type: 'socket'; readonly socket: Socket }
  | { readonly type: 'peer'; readonly worker: number; readonly generation: number; readonly port: MessagePort }
  | { readonly type: 'peer-gone'; readonly worker: number }
  /** A publish entering this server: from `server.publish()`, or from the bridge (not sent back to it). */
  | { readonly type: 'publish'; readonly topic: string; readonly data: Uint8Array; readonly binary: boolean; readonly fromBridge: boolean }
  /** Close every connection (1001) within `grace` seconds, then report 'stopped'. */
  | { readonly type: 'shutdown'; readonly grace: number }
  /** Rebuild the TLS context: from new options, or by re-reading the configured files. */
  | { readonly type: 'tls-reload'; readonly tls: TlsOptions | null }
  /**
   * Durable bridge: an entry of a topic this worker has subscribers for, sent to each such worker
   * in the stream's order; `except` is the serial of a connection here that published it with
   * `ws.publish` (-1: none).
   */
  | { readonly type: 'entry'; readonly topic: string; readonly id: string; readonly data: Uint8Array; readonly binary: boolean; readonly except: number }
  /** Durable bridge: the answer to a `bridge-publish` that asked for one: its id, or why it has none. */
  | { readonly type: 'published'; readonly ticket: number; readonly id: string | null; readonly error: string | null }
  /** Durable bridge: the answer to a `recover`. */
  | { readonly type: 'replay'; readonly ticket: number; readonly entries: readonly ReplayedEntry[]; readonly complete: boolean }
  | { readonly type: 'bridge-notice'; readonly notice: BridgeNotice }
  /** For a connection of this worker, or every connection with a tag here. */
  | DirectMessage
  /** Load a new instance of the app modules and start it, keeping the old one (reply: 'reload-prepared'). */
  | { readonly type: 'reload-prepare'; readonly generation: number }
  /** Switch to the prepared instance (true) or drop it (false). */
  | { readonly type: 'reload-finish'; readonly generation: number; readonly commit: boolean }
  /** The answer to a worker's `cluster-count`. */
  | { readonly type: 'cluster-count'; readonly request: number; readonly count: number }
  /** Stop taking connections and close this worker's with 1001, each at a random moment within `spread` seconds; then 'stopped'. */
  | { readonly type: 'drain'; readonly spread: number; readonly grace: number };

export interface ReplayedEntry {
  readonly id: string;
  readonly data: Uint8Array;
  readonly binary: boolean;
}

/** Where a direct message goes: one connection, by id, or every connection with a tag. */
export type DirectTarget = { readonly id: string } | { readonly tag: string };

/** What a direct message does there. */
export type DirectAction =
  | { readonly kind: 'send'; readonly data: Uint8Array; readonly binary: boolean; readonly compress: boolean | undefined; readonly priority: Priority }
  | { readonly kind: 'close'; readonly code: number; readonly reason: string };

/** `shard.send(id)`, `shard.close(id)`, `sendTo(key)`, `closeAll(key)` reaching the worker that holds the connections. */
export interface DirectMessage {
  readonly type: 'direct';
  readonly target: DirectTarget;
  readonly action: DirectAction;
}

/** Worker → primary. */
export type WorkerMessage =
  | { readonly type: 'ready' }
  /** With a bridge: this worker's first subscriber to these topics came, or its last one left. */
  | { readonly type: 'interest'; readonly topics: readonly string[]; readonly subscribed: boolean }
  /**
   * With a bridge: a publish made on this server, for the other servers (durable bridge: for every
   * subscriber, this server's too). Durable bridge only: `except`, the serial of the publishing
   * connection to leave out (-1: none); `ticket` ≥ 0 asks for a `published` answer.
   */
  | { readonly type: 'bridge-publish'; readonly topic: string; readonly data: Uint8Array; readonly binary: boolean; readonly except: number; readonly ticket: number }
  /** Durable bridge: a connection here subscribed to `topic` with `since` (after the `interest` that covers it). */
  | { readonly type: 'recover'; readonly topic: string; readonly since: string; readonly ticket: number }
  /** With a cluster directory: what goes to other servers, and the counts asked of them. */
  | ClusterRequest
  /** The reload's new app instance is loaded and started (`error`: why it is not). */
  | { readonly type: 'reload-prepared'; readonly generation: number; readonly error: string | null }
  | { readonly type: 'stopped' };

/** Worker → primary, for the other servers of a cluster. */
export type ClusterRequest =
  /** For a connection of `server` (another server). */
  | { readonly type: 'cluster-direct'; readonly server: string; readonly message: DirectMessage }
  /** For the connections tagged `message.target.tag` on the other servers. */
  | { readonly type: 'cluster-tagged'; readonly message: DirectMessage }
  /** This worker's first connection tagged `key` came (true), or its last one left (false). */
  | { readonly type: 'tag-interest'; readonly key: string; readonly held: boolean }
  /** Count across the cluster: a topic's subscribers, or (topic null) connections; answered by `cluster-count`. */
  | { readonly type: 'cluster-count'; readonly request: number; readonly topic: string | null };

/**
 * Worker → worker, over the MessagePort between them. A publish carries the frame built once by
 * the publisher: uncompressed, then (when compression applies) compressed, back to back, either
 * copied into the message or, when large, left in the shared pool with only a handle crossing.
 */
export type PeerMessage =
  | { readonly type: 'interest'; readonly topics: readonly string[]; readonly subscribed: boolean }
  | PeerPublish
  | DirectMessage;

export interface PeerPublish {
  readonly type: 'publish';
  readonly topic: string;
  readonly priority: Priority;
  /** Byte lengths of the plain frame and the compressed frame (0: none) in the bytes. */
  readonly plainLength: number;
  readonly compressedLength: number;
  /** The frames, when copied; null when they are in the pool under `handle`. */
  readonly bytes: Uint8Array | null;
  readonly handle: number;
}
