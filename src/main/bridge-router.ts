import type { Logger } from 'pino';
import { exactCopy } from '../shared/app.ts';
import type { PrimaryMessage } from '../shared/thread-messages.ts';
import type { BridgeStats, TopicBridge } from './topic-bridge.ts';

/** Sends a message into the worker mesh, preferably through `preferred`. */
export type MeshEntry = (message: PrimaryMessage, preferred: number) => boolean;

/**
 * BridgeRouter is the primary's side of a TopicBridge: it subscribes on the broker while any
 * worker has a subscriber to a topic, forwards this server's publishes, and feeds publishes from
 * other servers into the worker mesh, always through the same worker for a given topic so that
 * one publisher's messages keep their order.
 */
export class BridgeRouter {
  readonly #bridge: TopicBridge;
  readonly #enter: MeshEntry;
  readonly #workers: number;
  /** Topic → workers with local subscribers. */
  readonly #interest = new Map<string, Set<number>>();

  constructor(bridge: TopicBridge, enter: MeshEntry, workers: number) {
    this.#bridge = bridge;
    this.#enter = enter;
    this.#workers = workers;
  }

  async start(logger: Logger): Promise<void> {
    await this.#bridge.start((topic, payload, binary) => this.#deliver(topic, payload, binary), logger);
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

  publish(topic: string, data: Uint8Array, binary: boolean): void {
    this.#bridge.publish(topic, data, binary);
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
    this.#enter({ type: 'publish', topic, data: exactCopy(payload), binary, fromBridge: true }, topicHash(topic) % this.#workers);
  }
}

/** FNV-1a: a stable entry worker per topic. */
function topicHash(topic: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) hash = Math.imul(hash ^ topic.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
