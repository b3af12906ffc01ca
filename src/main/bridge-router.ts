import type { Logger } from 'pino';
import type { BridgeNotice } from '../shared/app.ts';
import { exactCopy } from '../shared/app.ts';
import type { PrimaryMessage, WorkerMessage } from '../shared/thread-messages.ts';
import type { AnyTopicBridge, BridgeStats, StreamEntry } from './topic-bridge.ts';

/** Where the router sends into the workers. */
export interface RouterOutlets {
  /** Into the worker mesh through `preferred`, or the next ready worker; false when none is. */
  enter(message: PrimaryMessage, preferred: number): boolean;
  /** To one worker, if it is running. */
  post(worker: number, message: PrimaryMessage): void;
}

type BridgePublish = Extract<WorkerMessage, { type: 'bridge-publish' }>;
type Recover = Extract<WorkerMessage, { type: 'recover' }>;

/**
 * BridgeRouter is the primary's side of a topic bridge: it subscribes on the broker while any
 * worker has a subscriber to a topic, and forwards this server's publishes.
 *
 * Plain bridge: a publish from another server enters the worker mesh through one worker chosen
 * by the topic, so that one publisher's messages keep their order, and the mesh spreads it.
 * Durable bridge: every entry goes straight to each worker with subscribers, in the stream's
 * order, on the same port as the answers to that worker's recoveries; the router also answers
 * the workers' requests (a publish's id, a recovery's replay).
 */
export class BridgeRouter {
  readonly #bridge: AnyTopicBridge;
  readonly #outlets: RouterOutlets;
  readonly #workers: number;
  /** Topic → workers with local subscribers. */
  readonly #interest = new Map<string, Set<number>>();

  constructor(bridge: AnyTopicBridge, outlets: RouterOutlets, workers: number) {
    this.#bridge = bridge;
    this.#outlets = outlets;
    this.#workers = workers;
  }

  async start(logger: Logger): Promise<void> {
    const notice = (n: BridgeNotice): void => this.#notice(n);
    if (this.#bridge.durable === true) await this.#bridge.start({ entry: (topic, entry) => this.#entry(topic, entry), notice }, logger);
    else await this.#bridge.start((topic, payload, binary) => this.#deliver(topic, payload, binary), logger, notice);
  }

  interest(worker: number, topics: readonly string[], subscribed: boolean): void {
    for (const topic of topics) {
      let set = this.#interest.get(topic);
      if (subscribed) {
        if (set === undefined) {
          this.#interest.set(topic, (set = new Set()));
          this.#bridge.subscribe(topic);
        }
        set.add(worker);
      } else if (set !== undefined && set.delete(worker) && set.size === 0) {
        this.#interest.delete(topic);
        this.#bridge.unsubscribe(topic);
      }
    }
  }

  /** A worker died: its subscribers went with it. */
  workerGone(worker: number): void {
    for (const topic of [...this.#interest.keys()]) this.interest(worker, [topic], false);
  }

  /** A publish made on `worker`. */
  publish(worker: number, message: BridgePublish): void {
    const bridge = this.#bridge;
    if (bridge.durable !== true) {
      bridge.publish(message.topic, message.data, message.binary);
      return;
    }
    const except = message.except >= 0 ? { worker, serial: message.except } : null;
    const appended = bridge.append(message.topic, message.data, message.binary, except);
    const ticket = message.ticket;
    appended.then(
      (id) => {
        if (ticket >= 0) this.#outlets.post(worker, { type: 'published', ticket, id, error: null });
      },
      (error: Error) => {
        if (ticket >= 0) this.#outlets.post(worker, { type: 'published', ticket, id: null, error: error.message });
      },
    );
  }

  /** A connection on `worker` subscribed with `since`: its replay goes back to that worker. */
  recover(worker: number, message: Recover): void {
    const { ticket } = message;
    const bridge = this.#bridge;
    if (bridge.durable !== true) {
      this.#outlets.post(worker, { type: 'replay', ticket, entries: [], complete: false });
      return;
    }
    bridge.replay(message.topic, message.since).then(
      (replay) => {
        const entries = replay.entries.map((entry) => ({ id: entry.id, data: exactCopy(entry.payload), binary: entry.binary }));
        this.#outlets.post(worker, { type: 'replay', ticket, entries, complete: replay.complete });
      },
      () => this.#outlets.post(worker, { type: 'replay', ticket, entries: [], complete: false }),
    );
  }

  stats(): BridgeStats {
    return this.#bridge.stats();
  }

  close(): Promise<void> {
    return this.#bridge.close();
  }

  #deliver(topic: string, payload: Buffer, binary: boolean): void {
    if (!this.#interest.has(topic)) return;
    // The payload is a view of the broker client's read buffer: send an exact copy.
    this.#outlets.enter({ type: 'publish', topic, data: exactCopy(payload), binary, fromBridge: true }, topicHash(topic) % this.#workers);
  }

  #entry(topic: string, entry: StreamEntry): void {
    const workers = this.#interest.get(topic);
    if (workers === undefined) return;
    const data = exactCopy(entry.payload);
    const except = entry.except;
    for (const worker of workers) {
      this.#outlets.post(worker, { type: 'entry', topic, id: entry.id, data, binary: entry.binary, except: except !== null && except.worker === worker ? except.serial : -1 });
    }
  }

  #notice(notice: BridgeNotice): void {
    for (let worker = 0; worker < this.#workers; worker++) this.#outlets.post(worker, { type: 'bridge-notice', notice });
  }
}

/** FNV-1a: a stable entry worker per topic. */
function topicHash(topic: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) hash = Math.imul(hash ^ topic.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
