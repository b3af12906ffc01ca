import type { BridgeNotice } from '../shared/app.ts';

/**
 * A TopicBridge carries publishes between shardws servers through an external broker. It lives
 * in the primary thread: one broker connection pair per server process, whatever the number of
 * workers. The runtime tells it which topics have local subscribers and hands it local
 * publishes; it hands back publishes from other servers.
 *
 * This is the at-most-once kind (redisBridge's plain mode): a server delivers its own publishes
 * locally at once, and the bridge only carries them to the others. DurableTopicBridge is the
 * other kind.
 */
export interface TopicBridge {
  readonly durable?: false;
  /** Connects; `deliver` receives publishes that came from other servers; `notice` what the app should hear of. */
  start(deliver: (topic: string, payload: Buffer, binary: boolean) => void, log: BridgeLog, notice?: (notice: BridgeNotice) => void): Promise<void>;
  /** Some local client subscribes to `topic` (called on the first one only). */
  subscribe(topic: string): void;
  /** The last local subscriber of `topic` left. */
  unsubscribe(topic: string): void;
  /** A local publish, for the other servers. Never blocks and never queues without bound. */
  publish(topic: string, payload: Uint8Array, binary: boolean): void;
  stats(): BridgeStats;
  close(): Promise<void>;
}

/**
 * A DurableTopicBridge (redisBridge's streams mode) keeps each topic's messages in order in the
 * broker, each with an id that is the same on every server. Every publish, this server's own
 * included, reaches local subscribers only through `entry`, so every subscriber of a topic, on
 * every server, sees one order; a subscriber that comes back gets what it missed from `replay`.
 */
export interface DurableTopicBridge {
  readonly durable: true;
  start(events: DurableBridgeEvents, log: BridgeLog): Promise<void>;
  /** Some local client subscribes to `topic` (called on the first one only). */
  subscribe(topic: string): void;
  /** The last local subscriber of `topic` left. */
  unsubscribe(topic: string): void;
  /**
   * Appends a publish made on this server; resolves to its id once the broker has it (after an
   * outage, when it is written from the buffer). Rejects when it is dropped: past the outage
   * buffer, refused by the broker, or the bridge closes.
   */
  append(topic: string, payload: Uint8Array, binary: boolean, except: Except | null): Promise<string>;
  /**
   * The topic's entries after `since`, in order, and whether they are all there were (false:
   * some are gone, older than the retention). Called after `subscribe(topic)`: every entry the
   * replay does not hold comes through `entry` (some may come both ways; ids tell them apart).
   */
  replay(topic: string, since: string): Promise<Replay>;
  stats(): BridgeStats;
  close(): Promise<void>;
}

export interface DurableBridgeEvents {
  /** An entry of a subscribed topic: each once, in the stream's order. */
  entry(topic: string, entry: StreamEntry): void;
  notice(notice: BridgeNotice): void;
}

/** The connection a publish leaves out (`ws.publish`): its worker, and its serial there. */
export interface Except {
  readonly worker: number;
  readonly serial: number;
}

export interface StreamEntry {
  readonly id: string;
  /** A view of the broker client's read buffer: valid only during the call. */
  readonly payload: Buffer;
  readonly binary: boolean;
  /** Set only on this server's own publishes. */
  readonly except: Except | null;
}

export interface Replay {
  readonly entries: readonly StreamEntry[];
  readonly complete: boolean;
}

export type AnyTopicBridge = TopicBridge | DurableTopicBridge;

export interface BridgeLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface BridgeStats {
  readonly connected: boolean;
  /** Publishes written to the broker. */
  readonly published: number;
  /** Publishes from the broker delivered here (streams mode: this server's own included). */
  readonly received: number;
  /**
   * Publishes lost: plain mode, made while the broker was unreachable; streams mode, the oldest
   * dropped past the outage buffer, or refused by the broker.
   */
  readonly dropped: number;
  /** Times the broker connection was lost. */
  readonly outages: number;
  /** Topics subscribed on the broker. */
  readonly topics: number;
  /** Streams mode: publishes waiting for the broker (the outage buffer), and their bytes. */
  readonly buffered?: number;
  readonly bufferedBytes?: number;
  /** Streams mode: publishes that waited in the buffer and were written once the broker was back. */
  readonly flushed?: number;
  /** Streams mode: publishes whose answer was lost with the connection, then found appended (not resent). */
  readonly confirmed?: number;
  /** Streams mode: `subscribe(topic, { since })` recoveries served, and the entries they replayed. */
  readonly replays?: number;
  readonly replayed?: number;
}
