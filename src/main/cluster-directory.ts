/**
 * A ClusterDirectory joins the servers of a cluster for what is not pub/sub: counts across
 * servers (subscribers, connections) that expire with a server that stops reporting, and direct
 * messages to a connection by id or to a tag's connections, routed to the servers that hold
 * them. It lives in the primary, beside the TopicBridge; `redisCluster()` is the implementation.
 */
import type { DirectMessage } from '../shared/thread-messages.ts';
import type { BridgeLog } from './topic-bridge.ts';

/** What this server reports on each heartbeat. */
export interface ServerReport {
  /** Open connections, all workers. */
  readonly connections: number;
  /** Topics whose local subscriber count changed since the last report, with the new count (0: none left). */
  readonly topics: ReadonlyMap<string, number>;
}

export interface ClusterDirectory {
  /** Connects as server `serverId`; `deliver` receives direct messages other servers sent here. */
  start(serverId: string, deliver: (message: DirectMessage) => void, log: BridgeLog): Promise<void>;
  /** Seconds a server's reports count after its last heartbeat. */
  readonly ttl: number;
  /**
   * This server is alive, with what changed since the last heartbeat (call every ttl / 3).
   * False when the broker may not have what was reported before: this one was not written, or
   * the connection was lost since (the broker may have restarted empty); report everything again.
   */
  heartbeat(report: ServerReport): Promise<boolean>;
  /** Subscribers of `topic` on the other live servers. */
  remoteSubscribers(topic: string): Promise<number>;
  /** Connections on the other live servers. */
  remoteConnections(): Promise<number>;
  /** This server holds connections tagged `key` (true) or no longer does (false). */
  tagHeld(key: string, held: boolean): void;
  /** To one connection on `server`. */
  sendDirect(server: string, message: DirectMessage): void;
  /** To every other live server that holds `message.target.tag`. */
  sendTagged(message: DirectMessage): void;
  close(): Promise<void>;
}
