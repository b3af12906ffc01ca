/**
 * ServerDirectory is the primary's side of addressing and presence: it sends a direct message to
 * the worker a connection id names, or to the workers that hold a tag (the presence table says
 * which), and, with a ClusterDirectory, to and from the other servers: it reports this server's
 * subscriber and connection counts on a heartbeat, keeps the broker's tag index to what the
 * workers hold, and answers the workers' cluster-wide counts.
 */
import type { Logger } from 'pino';
import type { Delivery } from '../shared/app.ts';
import type { PresenceTable } from '../shared/presence-table.ts';
import type { ClusterRequest, DirectAction, DirectMessage, PrimaryMessage } from '../shared/thread-messages.ts';
import { parseConnectionId } from '../worker/connection-directory.ts';
import type { ClusterDirectory } from './cluster-directory.ts';

/** What the directory needs of the workers (the supervisor). */
export interface WorkerPosts {
  /** The generation of the worker in slot `worker`, or -1. */
  generationOf(worker: number): number;
  /** Posts to a worker that is up; false when it has none. */
  post(worker: number, message: PrimaryMessage): boolean;
}

/** Heartbeats between two reports of every count (the others carry only what changed). */
const FULL_REPORT_EVERY = 10;

export class ServerDirectory {
  readonly #serverId: string;
  readonly #presence: PresenceTable;
  readonly #workers: WorkerPosts;
  readonly #connections: () => number;
  readonly #cluster: ClusterDirectory | null;
  /** Topics with subscribers here, by worker (from the workers' interest messages), and what was last reported of each. */
  readonly #topics = new Map<string, Set<number>>();
  readonly #reported = new Map<string, number>();
  /** Tags held here, by worker: the broker's index has this server for a key while any worker holds it. */
  readonly #tags = new Map<string, Set<number>>();
  #heartbeat: NodeJS.Timeout | null = null;
  /** Heartbeats since the last full report: every FULL_REPORT_EVERY-th sends every count, in case the broker lost them (a restart). */
  #sinceFull = FULL_REPORT_EVERY;

  constructor(serverId: string, presence: PresenceTable, workers: WorkerPosts, connections: () => number, cluster: ClusterDirectory | null) {
    this.#serverId = serverId;
    this.#presence = presence;
    this.#workers = workers;
    this.#connections = connections;
    this.#cluster = cluster;
  }

  async start(logger: Logger): Promise<void> {
    const cluster = this.#cluster;
    if (cluster === null) return;
    await cluster.start(this.#serverId, (message) => this.deliver(message), logger);
    await this.#beat();
    this.#heartbeat = setInterval(() => void this.#beat(), (cluster.ttl * 1000) / 3);
    this.#heartbeat.unref();
  }

  /** To the connection `id`, wherever it is. */
  toId(id: string, action: () => DirectAction): Delivery {
    const parsed = parseConnectionId(id);
    if (parsed === null) return 'gone';
    const message: DirectMessage = { type: 'direct', target: { id }, action: action() };
    if (parsed.server !== this.#serverId) {
      if (this.#cluster === null) return 'gone';
      this.#cluster.sendDirect(parsed.server, message);
      return 'forwarded';
    }
    if (this.#workers.generationOf(parsed.worker) !== parsed.generation) return 'gone';
    return this.#workers.post(parsed.worker, message) ? 'forwarded' : 'gone';
  }

  /** To every connection tagged `key`, on this server's workers and the other servers. */
  toTag(key: string, action: DirectAction): void {
    const message: DirectMessage = { type: 'direct', target: { tag: key }, action };
    this.deliver(message);
    this.#cluster?.sendTagged(message);
  }

  /** A direct message for this server's connections (from the broker, or the server object). */
  deliver(message: DirectMessage): void {
    const target = message.target;
    if ('id' in target) {
      const parsed = parseConnectionId(target.id);
      if (parsed !== null && parsed.server === this.#serverId && this.#workers.generationOf(parsed.worker) === parsed.generation) this.#workers.post(parsed.worker, message);
      return;
    }
    const presence = this.#presence;
    const holders = presence.overflowed ? Array.from({ length: presence.workers }, (_, w) => w) : presence.workersWith('tag', target.tag);
    for (const worker of holders) this.#workers.post(worker, message);
  }

  /** Subscribers of `topic` on every server: this one's from shared memory, the others' from the broker. */
  async subscriberCount(topic: string): Promise<number> {
    const local = this.#presence.count('topic', topic);
    return this.#cluster === null ? local : local + (await this.#cluster.remoteSubscribers(topic));
  }

  async connectionCount(): Promise<number> {
    const local = this.#connections();
    return this.#cluster === null ? local : local + (await this.#cluster.remoteConnections());
  }

  /** A worker's first subscriber to these topics came, or its last one left. */
  topicInterest(worker: number, topics: readonly string[], subscribed: boolean): void {
    for (const topic of topics) held(this.#topics, topic, worker, subscribed);
  }

  /** What a worker asks of the cluster. */
  request(worker: number, message: ClusterRequest): void {
    const cluster = this.#cluster;
    switch (message.type) {
      case 'cluster-direct':
        cluster?.sendDirect(message.server, message.message);
        return;
      case 'cluster-tagged':
        cluster?.sendTagged(message.message);
        return;
      case 'tag-interest': {
        const change = held(this.#tags, message.key, worker, message.held);
        if (change !== null) cluster?.tagHeld(message.key, change);
        return;
      }
      case 'cluster-count': {
        const counted = message.topic === null ? this.connectionCount() : this.subscriberCount(message.topic);
        void counted.then((count) => this.#workers.post(worker, { type: 'cluster-count', request: message.request, count }));
        return;
      }
    }
  }

  /** A worker died: its tags and subscribers went with it. */
  workerGone(worker: number): void {
    for (const key of [...this.#tags.keys()]) {
      if (held(this.#tags, key, worker, false) === false) this.#cluster?.tagHeld(key, false);
    }
    for (const topic of [...this.#topics.keys()]) held(this.#topics, topic, worker, false);
  }

  async close(): Promise<void> {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    await this.#cluster?.close();
  }

  /**
   * Reports the counts that changed since the last heartbeat the broker got (topics are read
   * from the presence table), and every count now and then.
   */
  async #beat(): Promise<void> {
    const full = ++this.#sinceFull >= FULL_REPORT_EVERY;
    const changed = new Map<string, number>();
    for (const topic of this.#topics.keys()) {
      const count = this.#presence.count('topic', topic);
      if (full || this.#reported.get(topic) !== count) changed.set(topic, count);
    }
    for (const topic of this.#reported.keys()) if (!this.#topics.has(topic)) changed.set(topic, 0);
    if (!(await this.#cluster!.heartbeat({ connections: this.#connections(), topics: changed }))) {
      // Not written, or the broker may have lost what it had: every count and tag again.
      this.#sinceFull = FULL_REPORT_EVERY;
      for (const key of this.#tags.keys()) this.#cluster!.tagHeld(key, true);
      return;
    }
    if (full) this.#sinceFull = 0;
    for (const [topic, count] of changed) {
      if (count === 0) this.#reported.delete(topic);
      else this.#reported.set(topic, count);
    }
  }
}

/**
 * Records that `worker` holds `key` or not; returns true when the server just started holding
 * it, false when it just stopped, null when that did not change.
 */
function held(index: Map<string, Set<number>>, key: string, worker: number, holds: boolean): boolean | null {
  let set = index.get(key);
  if (holds) {
    if (set === undefined) index.set(key, (set = new Set()));
    set.add(worker);
    return set.size === 1 ? true : null;
  }
  if (set === undefined || !set.delete(worker)) return null;
  if (set.size > 0) return null;
  index.delete(key);
  return false;
}
