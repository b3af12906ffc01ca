import type { MessageData, SendOptions } from '../shared/app.ts';
import { exactCopy, messageBytes, sendsBinary } from '../shared/app.ts';
import type { DeflateConfig } from '../shared/config.ts';
import { encodeFrame } from '../shared/frame-encoder.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import { Opcode } from '../shared/opcodes.ts';
import { deflateMessageShared } from '../shared/permessage-deflate.ts';
import type { PeerPublish, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter, recordDeflate } from '../shared/worker-counters.ts';
import { kSendPrepared } from './connection.ts';
import type { Connection, TopicMembership } from './connection.ts';
import type { MeshTopics, PeerMesh } from './peer-mesh.ts';
import type { WorkerPresence } from './worker-presence.ts';

/** Where a worker's topics meet a TopicBridge: the primary, which owns the broker link. */
export interface BridgeLink {
  /** This worker's first subscriber to these topics came, or its last one left. */
  interest(topics: readonly string[], subscribed: boolean): void;
  /** A publish made here, for the other servers. */
  publish(topic: string, payload: Buffer, binary: boolean): void;
}

/**
 * The bridge link of a worker thread: messages to the primary. Without `publishes` (a cluster
 * directory but no bridge), only interest goes: the primary reports subscriber counts per topic.
 */
export function primaryBridgeLink(post: (message: WorkerMessage) => void, publishes = true): BridgeLink {
  return {
    interest: (topics, subscribed) => post({ type: 'interest', topics, subscribed }),
    publish: publishes ? (topic, payload, binary) => post({ type: 'bridge-publish', topic, data: exactCopy(payload), binary }) : () => {},
  };
}

/** Compresses a whole message once, without context takeover, for every subscriber. */
type SharedCompressor = (payload: Buffer) => Buffer;

/**
 * TopicRegistry is a worker's pub/sub: which local connections subscribe to a topic, and which
 * other workers have subscribers (learned from their interest messages through the PeerMesh),
 * so a publish is framed (and compressed) once here and sent only to workers that need it.
 */
export class TopicRegistry implements TopicMembership, MeshTopics {
  readonly #local = new Map<string, Set<Connection>>();
  readonly #remote = new Map<string, Set<number>>();
  readonly #mesh: PeerMesh;
  readonly #compressor: SharedCompressor | null;
  readonly #threshold: number;
  readonly #counters: Float64Array;
  readonly #bridge: BridgeLink | null;
  readonly #presence: WorkerPresence | null;

  /**
   * `deflate` in shared mode compresses each broadcast once for every subscriber that
   * negotiated it; in dedicated mode (or off) broadcasts go out uncompressed. `presence`
   * counts subscribers across the server's workers (without it, counts are this worker's).
   */
  constructor(mesh: PeerMesh, deflate: DeflateConfig | null, counters: Float64Array, bridge: BridgeLink | null, presence: WorkerPresence | null = null) {
    this.#mesh = mesh;
    this.#bridge = bridge;
    this.#presence = presence;
    this.#compressor =
      deflate !== null && deflate.mode === 'shared'
        ? (payload) => deflateMessageShared(payload, deflate.serverMaxWindowBits, deflate.level, deflate.memLevel)
        : null;
    this.#threshold = deflate?.threshold ?? 0;
    this.#counters = counters;
    mesh.attach(this);
  }

  /** Topics with at least one local subscriber (told to a peer that joins late). */
  get localTopics(): string[] {
    return [...this.#local.keys()];
  }

  /** Subscribers of `topic` on every worker of this server (with presence), else on this one. */
  subscriberCount(topic: string): number {
    const local = this.#local.get(topic)?.size ?? 0;
    return this.#presence === null ? local : this.#presence.count('topic', topic, local);
  }

  /** Returns the topic's subscriber count after this subscription. */
  subscribe(connection: Connection, topic: string): number {
    let set = this.#local.get(topic);
    if (set === undefined) {
      set = new Set();
      this.#local.set(topic, set);
      this.#mesh.announce([topic], true);
      this.#bridge?.interest([topic], true);
    }
    set.add(connection);
    this.#presence?.hold('topic', topic);
    return this.subscriberCount(topic);
  }

  /** Returns the topic's subscriber count after this unsubscription, or -1 when `connection` was not subscribed. */
  unsubscribe(connection: Connection, topic: string): number {
    const set = this.#local.get(topic);
    if (set === undefined || !set.delete(connection)) return -1;
    this.#presence?.release('topic', topic, set.size === 0);
    if (set.size === 0) {
      this.#local.delete(topic);
      this.#mesh.announce([topic], false);
      this.#bridge?.interest([topic], false);
    }
    return this.subscriberCount(topic);
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

    // Framed once (and compressed once) for every subscriber on every worker.
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const plain = encodeFrame(opcode, payload);
    let compressed: Buffer | null = null;
    if (this.#compressor !== null && compressionWanted(this.#threshold, payload.length, options?.compress)) {
      const deflated = this.#compressor(payload);
      recordDeflate(this.#counters, payload.length, deflated.length);
      compressed = encodeFrame(opcode, deflated, { rsv1: true });
    }
    const priority = options?.priority ?? 'normal';

    if (localCount > 0) {
      for (const connection of local!) {
        if (connection !== except) connection[kSendPrepared](plain, compressed, priority, null);
      }
    }
    if (remote !== undefined) this.#mesh.publish(remote, topic, plain, compressed, priority);
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
    if (release === null) {
      for (const connection of set) connection[kSendPrepared](plain, compressed, priority, null);
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
      connection[kSendPrepared](plain, compressed, priority, () => {
        if (released) return;
        released = true;
        drop();
      });
    }
    drop();
  }
}
