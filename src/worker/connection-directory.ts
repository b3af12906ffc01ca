/**
 * ConnectionDirectory makes a worker's connections addressable: each gets an id that says where
 * it lives (`server.worker.generation.sequence`), and app-defined tags. `send(id)` and
 * `close(id)` go straight to the one worker (or server) the id names; `sendTo(key)` and
 * `closeAll(key)` go to the workers the PresenceTable says hold the tag, never to all of them
 * when it knows better, and to other servers through the cluster link.
 */
import type { ConnectionInfo, Delivery, MessageData, SendOptions, SendStatus, ServerWebSocket } from '../shared/app.ts';
import { exactCopy, sendsBinary } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { DirectAction, DirectMessage, DirectTarget } from '../shared/thread-messages.ts';
import type { WorkerPresence } from './worker-presence.ts';

/** A connection as the directory sees it. */
export type Addressable = Pick<ServerWebSocket, 'id' | 'remoteAddress' | 'tags' | 'topics' | 'bufferedAmount' | 'send' | 'close'>;

/** The other workers, as the directory reaches them (the PeerMesh). */
export interface DirectPeers {
  /** The generation of the worker now in slot `worker`, or -1 when it has none. */
  generationOf(worker: number): number;
  /** Posts to one worker; false when it is not connected. */
  post(worker: number, message: DirectMessage): boolean;
  /** Worker ids of every connected peer. */
  readonly workers: Iterable<number>;
}

/** Other servers, through the bridge (absent without one). */
export interface ClusterLink {
  /** For the connection `id` on server `server`. */
  direct(server: string, message: DirectMessage): void;
  /** For every connection tagged `message.target.tag` on the other servers. */
  tagged(message: DirectMessage): void;
  /** This worker's first connection tagged `key` came (true) or its last one left (false). */
  tagHeld(key: string, held: boolean): void;
}

/** The parts of an id: `server.worker.generation.sequence` (base 36 numbers). */
interface ParsedId {
  readonly server: string;
  readonly worker: number;
  readonly generation: number;
}

const ID = /^([0-9a-z]+)\.([0-9a-z]{1,6})\.([0-9a-z]{1,8})\.[0-9a-z]+$/;

export function parseConnectionId(id: string): ParsedId | null {
  const parts = ID.exec(id);
  return parts === null ? null : { server: parts[1]!, worker: parseInt(parts[2]!, 36), generation: parseInt(parts[3]!, 36) };
}

/** The message a `send` or `sendTo` carries across threads and servers. */
export function sendAction(data: MessageData, options: SendOptions | undefined): DirectAction {
  return { kind: 'send', data: exactCopy(data), binary: sendsBinary(data, options?.binary), compress: options?.compress, priority: options?.priority ?? 'normal' };
}

export function closeAction(code: number | undefined, reason: string | undefined): DirectAction {
  return { kind: 'close', code: code ?? CloseCode.Normal, reason: reason ?? '' };
}

export class ConnectionDirectory<C extends Addressable = Addressable> {
  readonly #server: string;
  readonly #worker: number;
  readonly #prefix: string;
  readonly #byId = new Map<string, C>();
  readonly #tagged = new Map<string, Set<C>>();
  readonly #opened = new WeakMap<C, number>();
  readonly #peers: DirectPeers;
  readonly #presence: WorkerPresence;
  #cluster: ClusterLink | null = null;
  #sequence = 0;

  constructor(server: string, worker: number, generation: number, peers: DirectPeers, presence: WorkerPresence) {
    this.#server = server;
    this.#worker = worker;
    this.#prefix = `${server}.${worker.toString(36)}.${generation.toString(36)}.`;
    this.#peers = peers;
    this.#presence = presence;
  }

  /** Joins this worker to other servers (the bridge). */
  linkCluster(cluster: ClusterLink): void {
    this.#cluster = cluster;
  }

  /** A fresh id for a connection about to open. */
  nextId(): string {
    return this.#prefix + (++this.#sequence).toString(36);
  }

  add(connection: C): void {
    this.#byId.set(connection.id, connection);
    this.#opened.set(connection, Date.now());
  }

  /** A connection closed: its id and tags go with it. */
  remove(connection: C, tags: Iterable<string>): void {
    this.#byId.delete(connection.id);
    for (const key of tags) this.untag(connection, key);
  }

  get size(): number {
    return this.#byId.size;
  }

  /** When a connection opened (ms since the epoch). */
  openedAt(connection: C): number {
    return this.#opened.get(connection) ?? 0;
  }

  tag(connection: C, key: string): void {
    let set = this.#tagged.get(key);
    if (set === undefined) {
      this.#tagged.set(key, (set = new Set()));
      this.#cluster?.tagHeld(key, true);
    }
    set.add(connection);
    this.#presence.hold('tag', key);
  }

  untag(connection: C, key: string): void {
    const set = this.#tagged.get(key);
    if (set === undefined || !set.delete(connection)) return;
    this.#presence.release('tag', key, set.size === 0);
    if (set.size === 0) {
      this.#tagged.delete(key);
      this.#cluster?.tagHeld(key, false);
    }
  }

  list(): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const c of this.#byId.values()) {
      out.push({ id: c.id, remoteAddress: c.remoteAddress, tags: c.tags, topics: c.topics, bufferedAmount: c.bufferedAmount, openedAt: this.openedAt(c) });
    }
    return out;
  }

  send(id: string, data: MessageData, options?: SendOptions): SendStatus | Delivery {
    const local = this.#byId.get(id);
    if (local !== undefined) return local.send(data, options);
    return this.#route(id, () => sendAction(data, options));
  }

  close(id: string, code?: number, reason?: string): 'closing' | Delivery {
    const local = this.#byId.get(id);
    if (local !== undefined) {
      local.close(code, reason);
      return 'closing';
    }
    return this.#route(id, () => closeAction(code, reason));
  }

  sendTo(key: string, data: MessageData, options?: SendOptions): void {
    const local = this.#tagged.get(key);
    if (local !== undefined) for (const c of local) c.send(data, options);
    this.#spread(key, sendAction(data, options));
  }

  closeAll(key: string, code?: number, reason?: string): void {
    const local = this.#tagged.get(key);
    if (local !== undefined) for (const c of [...local]) c.close(code, reason);
    this.#spread(key, closeAction(code, reason));
  }

  /** A direct message from another worker, the primary or another server: acts on this worker's connections only. */
  receive(message: DirectMessage): void {
    const target = message.target;
    if ('id' in target) {
      const connection = this.#byId.get(target.id);
      if (connection !== undefined) act(connection, message.action);
      return;
    }
    const set = this.#tagged.get(target.tag);
    if (set !== undefined) for (const c of [...set]) act(c, message.action);
  }

  /** Sends a direct message for `id` where the id says the connection lives. */
  #route(id: string, action: () => DirectAction): Delivery {
    const parsed = parseConnectionId(id);
    if (parsed === null) return 'gone';
    if (parsed.server !== this.#server) {
      if (this.#cluster === null) return 'gone';
      this.#cluster.direct(parsed.server, { type: 'direct', target: { id }, action: action() });
      return 'forwarded';
    }
    // Its worker was replaced since (another generation), or it is this one and not here: closed.
    if (parsed.worker === this.#worker || this.#peers.generationOf(parsed.worker) !== parsed.generation) return 'gone';
    return this.#peers.post(parsed.worker, { type: 'direct', target: { id }, action: action() }) ? 'forwarded' : 'gone';
  }

  /** A tag's message to the other workers holding it (all of them when the table overflowed), and to other servers. */
  #spread(key: string, action: DirectAction): void {
    const message: DirectMessage = { type: 'direct', target: { tag: key } satisfies DirectTarget, action };
    const holders = this.#presence.workersWith('tag', key) ?? this.#peers.workers;
    for (const worker of holders) if (worker !== this.#worker) this.#peers.post(worker, message);
    this.#cluster?.tagged(message);
  }
}

function act(connection: Addressable, action: DirectAction): void {
  if (action.kind === 'send') connection.send(action.data, { binary: action.binary, compress: action.compress, priority: action.priority });
  else connection.close(action.code, action.reason);
}
