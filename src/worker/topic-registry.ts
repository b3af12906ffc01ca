import type { Logger } from 'pino';
import type { App, MessageData, PublishOptions, Recovery } from '../shared/app.ts';
import { exactCopy, messageBytes, sendsBinary } from '../shared/app.ts';
import type { DeflateConfig } from '../shared/config.ts';
import { compressionWanted } from '../shared/message-compression.ts';
import { Opcode } from '../shared/opcodes.ts';
import type { WindowBits } from '../shared/permessage-deflate.ts';
import { PreparedMessage } from '../shared/prepared-message.ts';
import type { BroadcastDeflate } from '../shared/prepared-message.ts';
import { isStreamId } from '../shared/stream-id.ts';
import type { PeerPublish, ReplayedEntry, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter } from '../shared/worker-counters.ts';
import { kSendPrepared, kSerial } from './connection.ts';
import type { Connection, TopicMembership } from './connection.ts';
import type { MeshTopics, PeerMesh } from './peer-mesh.ts';
import type { WorkerPresence } from './worker-presence.ts';
import { TopicRecovery } from './topic-recovery.ts';

/** Where a worker's topics meet a topic bridge: the primary, which owns the broker link. */
export interface BridgeLink {
  /** A durable bridge: publishes reach subscribers (here too) only through the broker, with ids. */
  readonly durable: boolean;
  /** This worker's first subscriber to these topics came, or its last one left. */
  interest(topics: readonly string[], subscribed: boolean): void;
  /** A publish made here; durable only: the serial of the connection to leave out (-1: none), and a ticket for its id (-1: none wanted). */
  publish(topic: string, payload: Buffer, binary: boolean, except: number, ticket: number): void;
  /** Durable only: a subscriber here wants `topic`'s entries after `since`. */
  recover(topic: string, since: string, ticket: number): void;
}

/**
 * The bridge link of a worker thread: messages to the primary. Without `publishes` (a cluster
 * directory but no bridge), only interest goes: the primary reports subscriber counts per topic.
 */
export function primaryBridgeLink(post: (message: WorkerMessage) => void, durable: boolean, publishes = true): BridgeLink {
  return {
    durable,
    interest: (topics, subscribed) => post({ type: 'interest', topics, subscribed }),
    publish: publishes ? (topic, payload, binary, except, ticket) => post({ type: 'bridge-publish', topic, data: exactCopy(payload), binary, except, ticket }) : () => {},
    recover: (topic, since, ticket) => post({ type: 'recover', topic, since, ticket }),
  };
}

type EntryHandlers = Pick<App<unknown>, 'stamp' | 'recovery'>;

/** The app handlers the registry calls (durable bridge), and where it logs their failures. */
export interface TopicHooks {
  /** The app a subscriber belongs to (its route's): routes may serve apps with different handlers. */
  readonly appOf: (connection: Connection) => EntryHandlers;
  readonly logger: Logger;
}

type Stamp = EntryHandlers['stamp'];

const NO_IDS = 'message ids need a durable bridge: redisBridge({ url, mode: "streams" })';

/**
 * TopicRegistry is a worker's pub/sub: which local connections subscribe to a topic, and which
 * other workers have subscribers (learned from their interest messages through the PeerMesh),
 * so a publish is framed (and compressed) once here and sent only to workers that need it.
 *
 * With a durable bridge a publish goes only to the primary (and the broker); it comes back as
 * an entry with its id, to every worker with subscribers, and is framed here for them. A
 * subscription with `since` is joined to its replay by TopicRecovery.
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
  readonly #presence: WorkerPresence | null;
  readonly #recovery = new TopicRecovery<Connection, PreparedMessage>({ sendFrames: (connection, message) => connection[kSendPrepared](message, 'normal', null) });
  /** Publishes waiting for their id (durable bridge), by ticket. */
  readonly #ids = new Map<number, { readonly resolve: (id: string) => void; readonly reject: (error: Error) => void }>();
  /** Recoveries waiting for their replay, by ticket. */
  readonly #replays = new Map<number, { readonly connection: Connection; readonly topic: string; readonly since: string }>();
  #nextTicket = 0;
  #hooks: TopicHooks | null = null;

  /**
   * With `deflate`, each broadcast is compressed once without context per window its
   * subscribers negotiated (PreparedMessage), in every compressor mode, for the subscribers of
   * every worker that negotiated permessage-deflate. `presence` counts subscribers across the
   * server's workers (without it, counts are this worker's).
   */
  constructor(mesh: PeerMesh, deflate: DeflateConfig | null, counters: Float64Array, bridge: BridgeLink | null, presence: WorkerPresence | null = null) {
    this.#mesh = mesh;
    this.#bridge = bridge;
    this.#presence = presence;
    this.#deflate = deflate === null ? null : { level: deflate.level, memLevel: deflate.memLevel };
    this.#window = deflate?.serverMaxWindowBits ?? 15;
    this.#threshold = deflate?.threshold ?? 0;
    this.#counters = counters;
    mesh.attach(this);
  }

  /** The apps' `stamp` and `recovery` handlers, once they are loaded. */
  useHooks(hooks: TopicHooks): void {
    this.#hooks = hooks;
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
  subscribe(connection: Connection, topic: string, since?: string): number {
    if (since !== undefined && !isStreamId(since)) throw new RangeError(`subscribe: since must be a message id (<milliseconds>-<sequence>), got ${JSON.stringify(since)}`);
    let set = this.#local.get(topic);
    if (set === undefined) {
      set = new Set();
      this.#local.set(topic, set);
      this.#mesh.announce([topic], true);
      this.#bridge?.interest([topic], true);
    }
    set.add(connection);
    this.#presence?.hold('topic', topic);
    const count = this.subscriberCount(topic);
    if (since === undefined) return count;
    const bridge = this.#bridge;
    if (bridge === null || !bridge.durable) {
      // Nothing to recover from: the app hears so, after the subscribe call returns.
      queueMicrotask(() => {
        if (this.#local.get(topic)?.has(connection) === true) this.#tellRecovery(connection, { topic, since, replayed: 0, complete: false });
      });
      return count;
    }
    // Live entries wait for the replay from now on; it is asked for after the interest above.
    this.#recovery.begin(topic, connection, since);
    const ticket = this.#nextTicket++;
    this.#replays.set(ticket, { connection, topic, since });
    bridge.recover(topic, since, ticket);
    return count;
  }

  /** Returns the topic's subscriber count after this unsubscription, or -1 when `connection` was not subscribed. */
  unsubscribe(connection: Connection, topic: string): number {
    const set = this.#local.get(topic);
    if (set === undefined || !set.delete(connection)) return -1;
    this.#presence?.release('topic', topic, set.size === 0);
    this.#recovery.forget(topic, connection);
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

  /**
   * Sends to the topic's subscribers here, on the other workers and, unless it came from there,
   * other servers. With a durable bridge only to the broker, which brings it back to every
   * subscriber with its id; `withId` then returns a Promise of that id.
   */
  publish(topic: string, data: MessageData, options: PublishOptions | undefined, except: Connection | null, fromBridge = false): Promise<string> | undefined {
    const bridge = fromBridge ? null : this.#bridge;
    if (bridge !== null && bridge.durable) return this.#append(bridge, topic, data, options, except);
    const ids = options?.withId === true ? Promise.reject(new Error(NO_IDS)) : undefined;
    const local = this.#local.get(topic);
    const remote = this.#remote.get(topic);
    const localCount = local === undefined ? 0 : local.size - (except !== null && local.has(except) ? 1 : 0);
    if (localCount === 0 && remote === undefined && bridge === null) return ids;
    this.#counters[Counter.PublishesOut]!++;

    const payload = messageBytes(data);
    const binary = sendsBinary(data, options?.binary);
    bridge?.publish(topic, payload, binary, -1, -1);
    if (localCount === 0 && remote === undefined) return ids;

    // Framed once (and compressed once per window in use) for every subscriber on every worker.
    const prepared = this.#prepare(binary ? Opcode.Binary : Opcode.Text, payload, options?.compress);
    const priority = options?.priority ?? 'normal';
    if (localCount > 0) {
      for (const connection of local!) {
        if (connection !== except) connection[kSendPrepared](prepared, priority, null);
      }
    }
    if (remote !== undefined) this.#mesh.publish(remote, topic, prepared.plain, prepared.compressible ? prepared.compressedAt(this.#window) : null, priority);
    return ids;
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

  /**
   * Durable bridge: an entry of `topic`, framed once (stamped with its id) for the subscribers
   * here; once per distinct `stamp` when the subscribers' apps differ (routes).
   */
  deliverEntry(topic: string, id: string, data: Uint8Array, binary: boolean, except: number): void {
    const set = this.#local.get(topic);
    if (set === undefined) return;
    this.#counters[Counter.PublishesIn]!++;
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const recovering = this.#recovery.of(topic);
    // Framed for the first subscriber's stamp; others only where routes serve apps with different ones.
    let first: Stamp;
    let prepared: PreparedMessage | null = null;
    let others: Map<Stamp, PreparedMessage> | null = null;
    for (const connection of set) {
      if (connection[kSerial] === except) continue;
      const stamp = this.#stampOf(connection);
      if (prepared === null) {
        first = stamp;
        prepared = this.#prepare(opcode, this.#stamp(stamp, topic, id, data, binary), undefined);
      }
      if (stamp === first!) {
        this.#sendEntry(recovering, topic, connection, id, prepared);
        continue;
      }
      let other = others?.get(stamp);
      if (other === undefined) {
        other = this.#prepare(opcode, this.#stamp(stamp, topic, id, data, binary), undefined);
        (others ??= new Map()).set(stamp, other);
      }
      this.#sendEntry(recovering, topic, connection, id, other);
    }
  }

  #sendEntry(recovering: ReadonlyMap<Connection, unknown> | undefined, topic: string, connection: Connection, id: string, message: PreparedMessage): void {
    if (recovering !== undefined && recovering.has(connection)) this.#recovery.live(topic, connection, id, message);
    else connection[kSendPrepared](message, 'normal', null);
  }

  /** Durable bridge: the primary's answer to a publish that asked for its id. */
  published(ticket: number, id: string | null, error: string | null): void {
    const waiting = this.#ids.get(ticket);
    if (waiting === undefined) return;
    this.#ids.delete(ticket);
    if (id !== null) waiting.resolve(id);
    else waiting.reject(new Error(error ?? 'publish failed'));
  }

  /** Durable bridge: the replay a recovering subscriber asked for. */
  replayed(ticket: number, entries: readonly ReplayedEntry[], complete: boolean): void {
    const request = this.#replays.get(ticket);
    if (request === undefined) return;
    this.#replays.delete(ticket);
    const { connection, topic, since } = request;
    this.#recovery.replayed(
      topic,
      connection,
      entries,
      (replayed) => this.#tellRecovery(connection, { topic, since, replayed, complete }),
      (entry) => {
        connection.send(this.#stamp(this.#stampOf(connection), topic, entry.id, entry.data, entry.binary), { binary: entry.binary });
      },
    );
  }

  #append(bridge: BridgeLink, topic: string, data: MessageData, options: PublishOptions | undefined, except: Connection | null): Promise<string> | undefined {
    this.#counters[Counter.PublishesOut]!++;
    let ticket = -1;
    let ids: Promise<string> | undefined;
    if (options?.withId === true) {
      ticket = this.#nextTicket++;
      ids = new Promise<string>((resolve, reject) => this.#ids.set(ticket, { resolve, reject }));
    }
    bridge.publish(topic, messageBytes(data), sendsBinary(data, options?.binary), except === null ? -1 : except[kSerial], ticket);
    return ids;
  }

  /** The message framed once for every subscriber, to be compressed (per window, on first use) when wanted. */
  #prepare(opcode: Opcode, payload: Buffer, compress: boolean | undefined): PreparedMessage {
    const compressible = this.#deflate !== null && compressionWanted(this.#threshold, payload.length, compress);
    return PreparedMessage.of(opcode, payload, compressible ? this.#deflate : null, this.#counters);
  }

  #stampOf(connection: Connection): Stamp {
    return this.#hooks?.appOf(connection).stamp;
  }

  /** What subscribers get for entry `id`: their app's `stamp`, or the data as published. */
  #stamp(stamp: Stamp, topic: string, id: string, data: Uint8Array, binary: boolean): Buffer {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (stamp === undefined) return bytes;
    try {
      return messageBytes(stamp(topic, id, bytes, binary));
    } catch (error) {
      this.#hooks!.logger.error({ err: error, topic, id }, 'app stamp handler threw; sending the message as published');
      return bytes;
    }
  }

  #tellRecovery(connection: Connection, recovery: Recovery): void {
    const handler = this.#hooks?.appOf(connection).recovery;
    if (handler === undefined) return;
    try {
      handler(connection, recovery);
    } catch (error) {
      this.#hooks!.logger.error({ err: error, topic: recovery.topic }, 'app recovery handler threw');
    }
  }
}
