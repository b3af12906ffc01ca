/**
 * A TopicBridge carries publishes between shardws servers through an external broker. It lives
 * in the primary thread: one broker connection pair per server process, whatever the number of
 * workers. The runtime tells it which topics have local subscribers and hands it local
 * publishes; it hands back publishes from other servers.
 */
export interface TopicBridge {
  /** Connects; `deliver` receives publishes that came from other servers. */
  start(deliver: (topic: string, payload: Buffer, binary: boolean) => void, log: BridgeLog): Promise<void>;
  /** Some local client subscribes to `topic` (called on the first one only). */
  subscribe(topic: string): void;
  /** The last local subscriber of `topic` left. */
  unsubscribe(topic: string): void;
  /** A local publish, for the other servers. Never blocks and never queues without bound. */
  publish(topic: string, payload: Uint8Array, binary: boolean): void;
  stats(): BridgeStats;
  close(): Promise<void>;
}

export interface BridgeLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface BridgeStats {
  readonly connected: boolean;
  readonly published: number;
  readonly received: number;
  /** Publishes lost because the broker was unreachable. */
  readonly dropped: number;
  /** Times the broker connection was lost. */
  readonly outages: number;
  /** Topics subscribed on the broker. */
  readonly topics: number;
}
