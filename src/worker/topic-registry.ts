import type { MessageData, SendOptions } from '../shared/app.ts';
import { exactCopy, messageBytes, sendsBinary } from '../shared/app.ts';
import type { DeflateConfig } from '../shared/config.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import { Opcode } from '../shared/opcodes.ts';
import type { WindowBits } from '../shared/permessage-deflate.ts';
import { PreparedMessage } from '../shared/prepared-message.ts';
import type { BroadcastDeflate } from '../shared/prepared-message.ts';
import type { PeerPublish, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter } from '../shared/worker-counters.ts';
import { kSendPrepared } from './connection.ts';
import type { Connection, TopicMembership } from './connection.ts';
import type { MeshTopics, PeerMesh } from './peer-mesh.ts';

/** Where a worker's topics meet a TopicBridge: the primary, which owns the broker link. */
export interface BridgeLink {
  /** This worker's first subscriber to these topics came, or its last one left. */
  interest(topics: readonly string[], subscribed: boolean): void;
  /** A publish made here, for the other servers. */
  publish(topic: string, payload: Buffer, binary: boolean): void;
}

/** The bridge link of a worker thread: messages to the primary. */
export function primaryBridgeLink(post: (message: WorkerMessage) => void): BridgeLink {
  return {
    interest: (topics, subscribed) => post({ type: 'interest', topics, subscribed }),
    publish: (topic, payload, binary) => post({ type: 'bridge-publish', topic, data: exactCopy(payload), binary }),
  };
}

/**
 * TopicRegistry is a worker's pub/sub: which local connections subscribe to a topic, and which
 * other workers have subscribers (learned from their interest messages through the PeerMesh),
 * so a publish is framed (and compressed) once here and sent only to workers that need it.
 */
export class TopicRegistry implements TopicMembership, MeshTopics {
  readonly #local = new Map<string, Set<Connection>>();
  readonly #remote = new Map<string, Set<number>>();
  readonly #mesh: PeerMesh;
  /** How broadcasts are compressed; null without permessage-deflate. */
  readonly #deflate: BroadcastDeflate | null;
  /** The window most subscribers negotiated (the configured one): what other workers get. */
  readonly #window: WindowBits;
  readonly #threshold: number;
  readonly #counters: Float64Array;
  readonly #bridge: BridgeLink | null;

  /**
   * With `deflate`, each broadcast is compressed once without context per window its
   * subscribers negotiated (PreparedMessage), in every compressor mode, for the subscribers of
   * every worker that negotiated permessage-deflate.
   */
  constructor(mesh: PeerMesh, deflate: DeflateConfig | null, counters: Float64Array, bridge: BridgeLink | null) {
    this.#mesh = mesh;
    this.#bridge = bridge;
    this.#deflate = deflate === null ? null : { level: deflate.level, memLevel: deflate.memLevel };
    this.#window = deflate?.serverMaxWindowBits ?? 15;
    this.#threshold = deflate?.threshold ?? 0;
    this.#counters = counters;
    mesh.attach(this);
  }

  /** Topics with at least one local subscriber (told to a peer that joins late). */
  get localTopics(): string[] {
    return [...this.#local.keys()];
  }

  subscriberCount(topic: string): number {
    return this.#local.get(topic)?.size ?? 0;
  }

  subscribe(connection: Connection, topic: string): void {
    let set = this.#local.get(topic);
    if (set === undefined) {
      set = new Set();
      this.#local.set(topic, set);
      this.#mesh.announce([topic], true);
      this.#bridge?.interest([topic], true);
    }
    set.add(connection);
  }

  unsubscribe(connection: Connection, topic: string): void {
    const set = this.#local.get(topic);
    if (set === undefined || !set.delete(connection)) return;
    if (set.size === 0) {
      this.#local.delete(topic);
      this.#mesh.announce([topic], false);
      this.#bridge?.interest([topic], false);
    }
  }

  /** A peer's subscribers came or went. */
  setRemoteInterest(worker: number, topics: readonly string[], subscribed: boolean): void {
    for (const topic of topics) {
      let set = this.#remote.get(topic);
      if (subscribed) {
        if (set === undefined) this.#remote.set(topic, (set = new Set()));
        set.add(worker);
      } else if (set !== undefined) {
        set.delete(worker);
        if (set.size === 0) this.#remote.delete(topic);
      }
    }
  }

  /** A peer is gone: it has no subscribers any more. */
  forgetWorker(worker: number): void {
    for (const [topic, set] of this.#remote) {
      set.delete(worker);
      if (set.size === 0) this.#remote.delete(topic);
    }
  }

  /** Sends to the topic's subscribers here, on the other workers and, unless it came from there, other servers. */
  publish(topic: string, data: MessageData, options: SendOptions | undefined, except: Connection | null, fromBridge = false): void {
    const local = this.#local.get(topic);
    const remote = this.#remote.get(topic);
    const localCount = local === undefined ? 0 : local.size - (except !== null && local.has(except) ? 1 : 0);
    const bridge = fromBridge ? null : this.#bridge;
    if (localCount === 0 && remote === undefined && bridge === null) return;
    this.#counters[Counter.PublishesOut]!++;

    const payload = messageBytes(data);
    const binary = sendsBinary(data, options?.binary);
    bridge?.publish(topic, payload, binary);
    if (localCount === 0 && remote === undefined) return;

    // Framed once (and compressed once per window in use) for every subscriber on every worker.
    const compressible = this.#deflate !== null && compressionWanted(this.#threshold, payload.length, options?.compress);
    const prepared = PreparedMessage.of(binary ? Opcode.Binary : Opcode.Text, payload, compressible ? this.#deflate : null, this.#counters);
    const priority = options?.priority ?? 'normal';

    if (localCount > 0) {
      for (const connection of local!) {
        if (connection !== except) connection[kSendPrepared](prepared, priority, null);
      }
    }
    if (remote !== undefined) this.#mesh.publish(remote, topic, prepared.plain, compressible ? prepared.compressedAt(this.#window) : null, priority);
  }

  /** A publish from another worker: write its frames to local subscribers. */
  deliver(message: PeerPublish, frames: Buffer, release: (() => void) | null): void {
    this.#counters[Counter.PublishesIn]!++;
    const set = this.#local.get(message.topic);
    const priority = message.priority;
    if (set === undefined) {
      release?.();
      return;
    }
    const plain = frames.subarray(0, message.plainLength);
    const compressed = message.compressedLength > 0 ? frames.subarray(message.plainLength, message.plainLength + message.compressedLength) : null;
    // The publisher compressed it at the configured window; other windows are compressed here.
    const prepared = PreparedMessage.fromFrames(plain, compressed, this.#window, this.#deflate, this.#counters);
    if (release === null) {
      for (const connection of set) connection[kSendPrepared](prepared, priority, null);
      return;
    }
    // Pooled frames: one hold for this loop and one per connection; the last one out returns
    // the pages to the pool.
    let holds = 1;
    const drop = (): void => {
      if (--holds === 0) release();
    };
    for (const connection of set) {
      holds++;
      let released = false;
      connection[kSendPrepared](prepared, priority, () => {
        if (released) return;
        released = true;
        drop();
      });
    }
    drop();
  }
}
