import { randomBytes } from 'node:crypto';
import type { BridgeNotice } from '../shared/app.ts';
import { REDIS_BRIDGE_FIELDS, REDIS_OPTIONS, optionValue } from '../shared/config.ts';
import { ORIGIN_BYTES, plainEnvelope, readPlainEnvelope } from './bridge-envelope.ts';
import { RedisLink } from './redis-link.ts';
import { redisStreamsBridge } from './redis-streams-bridge.ts';
import type { Retention } from './stream-store.ts';
import type { AnyTopicBridge, BridgeStats, DurableTopicBridge, TopicBridge } from './topic-bridge.ts';

export type { Retention } from './stream-store.ts';

export interface RedisBridgeOptions {
  /** redis://[user:pass@]host:port[/db] or rediss://…; for a Redis Cluster, any of its nodes. */
  readonly url: string;
  /**
   * `plain` (default): Redis pub/sub, at most once, the cheapest. `streams`: each topic's messages
   * kept in a Redis stream, with ids, recovery (`ws.subscribe(topic, { since })`) and an outage
   * buffer: at least once, exactly once for a client that deduplicates by id.
   */
  readonly mode?: 'plain' | 'streams';
  /** Prefix of the channels (and streams), so several apps can share one Redis (default "shardws:"). */
  readonly prefix?: string;
  /** Longest pause between reconnection attempts, in milliseconds (default 5,000). */
  readonly maxReconnectDelay?: number;
  /** Whether `url` is a Redis Cluster node; by default it is asked when connecting (`INFO cluster`). */
  readonly cluster?: boolean;
  /** Streams mode: how much each topic's stream keeps (default `{ maxLength: 10_000 }`; `maxAge` in seconds). */
  readonly retention?: Retention;
  /** Streams mode: bytes of publishes kept while Redis is unreachable; past it the oldest go (default 16 MiB). */
  readonly outageBuffer?: number;
}

/** The options both modes share, checked once. */
export interface ResolvedRedisOptions {
  readonly url: string;
  readonly prefix: string;
  readonly maxReconnectDelay: number;
  readonly cluster: boolean | undefined;
}

/**
 * redisBridge joins servers through Redis, with ioredis (chosen over node-redis for its binary
 * `messageBuffer` events, its long-proven reconnect, and its Cluster client with sharded pub/sub).
 * The plain mode is Redis pub/sub; the streams mode is in redis-streams-bridge.ts. Both work on a
 * single Redis and on a Redis Cluster (redis-link.ts).
 */
export function redisBridge(options: RedisBridgeOptions & { readonly mode: 'streams' }): DurableTopicBridge;
export function redisBridge(options: RedisBridgeOptions & { readonly mode?: 'plain' }): TopicBridge;
export function redisBridge(options: RedisBridgeOptions): AnyTopicBridge;
export function redisBridge(options: RedisBridgeOptions): AnyTopicBridge {
  if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) throw new TypeError(`redisBridge: url must be a redis:// or rediss:// URL, got ${String(options.url)}`);
  const mode = options.mode ?? 'plain';
  if (mode !== 'plain' && mode !== 'streams') throw new RangeError(`redisBridge: mode must be plain or streams, got ${String(mode)}`);
  if (mode === 'plain' && (options.retention !== undefined || options.outageBuffer !== undefined)) {
    throw new TypeError("redisBridge: retention and outageBuffer belong to mode: 'streams'");
  }
  const common: ResolvedRedisOptions = {
    url: options.url,
    prefix: options.prefix ?? 'shardws:',
    maxReconnectDelay: options.maxReconnectDelay ?? 5000,
    cluster: options.cluster,
  };
  if (mode === 'plain') return plainBridge(common);
  return redisStreamsBridge(common, resolveRetention(options.retention), optionValue(REDIS_BRIDGE_FIELDS.redisOutageBuffer, REDIS_OPTIONS.redisOutageBuffer, options.outageBuffer) as number);
}

function resolveRetention(retention: Retention | undefined): Retention {
  if (retention === undefined) return { maxLength: REDIS_OPTIONS.redisRetention.default };
  if ('maxLength' in retention === 'maxAge' in retention) throw new TypeError('redisBridge: retention is { maxLength } or { maxAge }, one of them');
  if ('maxLength' in retention) return { maxLength: optionValue(REDIS_BRIDGE_FIELDS.redisRetention, REDIS_OPTIONS.redisRetention, retention.maxLength) as number };
  const maxAge = optionValue(REDIS_BRIDGE_FIELDS.redisMaxAge, REDIS_OPTIONS.redisMaxAge, retention.maxAge) as number;
  if (maxAge <= 0) throw new RangeError('redisBridge: retention.maxAge must be more than 0 seconds');
  return { maxAge };
}

/**
 * The plain mode: a message on the topic's channel per publish, with the origin server's id so a
 * server skips its own (Redis echoes them to every subscriber, itself included). Publishes made
 * while Redis is unreachable are dropped and counted (no offline queue: it would grow without
 * bound); subscriptions are restored on reconnect.
 */
function plainBridge(options: ResolvedRedisOptions): TopicBridge {
  const { prefix } = options;
  const origin = randomBytes(ORIGIN_BYTES);
  const link = new RedisLink({
    url: options.url,
    cluster: options.cluster,
    maxReconnectDelay: options.maxReconnectDelay,
    whileDown: 'local pub/sub goes on, cross-server publishes are dropped until it is back',
  });
  const topics = new Set<string>();
  let published = 0;
  let received = 0;
  let dropped = 0;

  return {
    async start(deliver, log, notice?: (notice: BridgeNotice) => void) {
      await link.start(
        {
          message(channel, message) {
            const decoded = readPlainEnvelope(message, origin);
            if (decoded === null || decoded.own) return;
            const name = channel.toString('utf8');
            if (!name.startsWith(prefix)) return;
            received++;
            deliver(name.slice(prefix.length), decoded.payload, decoded.binary);
          },
          interrupted() {},
          resubscribed() {},
          down: () => notice?.({ type: 'down' }),
          up: () => notice?.({ type: 'up' }),
        },
        log,
      );
    },

    subscribe(topic) {
      topics.add(topic);
      // Offline, the link subscribes every channel again when it is back.
      void link.subscribe(prefix + topic);
    },

    unsubscribe(topic) {
      topics.delete(topic);
      link.unsubscribe(prefix + topic);
    },

    publish(topic, payload, binary) {
      if (!link.ready) {
        dropped++;
        return;
      }
      published++;
      link.publish(prefix + topic, plainEnvelope(origin, payload, binary)).catch(() => {
        published--;
        dropped++;
      });
    },

    stats(): BridgeStats {
      return { connected: link.ready, published, received, dropped, outages: link.outages, topics: topics.size };
    },

    close: () => link.close(),
  };
}
