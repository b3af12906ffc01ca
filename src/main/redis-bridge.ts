import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { BridgeLog, BridgeStats, TopicBridge } from './topic-bridge.ts';

export interface RedisBridgeOptions {
  /** redis://[user:pass@]host:port[/db] */
  readonly url: string;
  /** Prefix of the broker channels, so several apps can share one Redis (default "shardws:"). */
  readonly prefix?: string;
  /** Longest pause between reconnection attempts, in milliseconds (default 5,000). */
  readonly maxReconnectDelay?: number;
}

/**
 * Envelope of a message on the broker: version, flags, the origin server's id, the payload.
 * The origin lets a server skip its own publishes (Redis echoes them to every subscriber,
 * itself included); binary-safe because Redis channels carry bytes.
 */
const VERSION = 1;
const FLAG_BINARY = 1;
const ORIGIN_BYTES = 16;
const HEADER_BYTES = 2 + ORIGIN_BYTES;

/**
 * redisBridge joins servers through Redis pub/sub, with ioredis (chosen over node-redis for
 * its `messageBuffer` event, which keeps payloads binary without a per-message option, and its
 * long-proven reconnect/resubscribe). Two connections per process: publishes and subscriptions
 * cannot share one (a subscribed Redis connection takes no other commands). Publishes made while
 * the broker is down are dropped and counted (no offline queue: it would grow without bound);
 * subscriptions are restored on reconnect.
 */
export function redisBridge(options: RedisBridgeOptions): TopicBridge {
  const prefix = options.prefix ?? 'shardws:';
  const origin = randomBytes(ORIGIN_BYTES);
  const maxDelay = options.maxReconnectDelay ?? 5000;
  const topics = new Set<string>();
  let publisher: Redis | null = null;
  let subscriber: Redis | null = null;
  let log: BridgeLog | null = null;
  let published = 0;
  let received = 0;
  let dropped = 0;
  let outages = 0;
  let down = false;
  let closing = false;

  const connection = (role: string): Redis => {
    const redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Subscriptions are restored from `topics` on every 'ready' instead: ioredis's own list
      // would bring back a channel whose unsubscribe failed during the outage.
      autoResubscribe: false,
      retryStrategy: (attempt) => Math.min(maxDelay, 50 * 2 ** Math.min(attempt, 10)),
    });
    redis.on('error', (error: Error) => {
      if (!down) log?.warn({ role, err: error.message }, 'redis bridge: broker error');
    });
    redis.on('close', () => {
      if (closing || down) return;
      down = true;
      outages++;
      log?.error({ role, url: redact(options.url) }, 'redis bridge: lost the broker; local pub/sub goes on, cross-server delivery resumes on reconnect');
    });
    redis.on('ready', () => {
      if (down && publisher?.status === 'ready' && subscriber?.status === 'ready') {
        down = false;
        log?.info({ url: redact(options.url) }, 'redis bridge: broker is back');
      }
    });
    return redis;
  };

  const channel = (topic: string): string => prefix + topic;

  return {
    async start(deliver, bridgeLog) {
      log = bridgeLog;
      publisher = connection('publish');
      subscriber = connection('subscribe');
      subscriber.on('ready', () => {
        if (topics.size > 0) subscriber?.subscribe(...[...topics].map(channel)).catch(() => {});
      });
      subscriber.on('messageBuffer', (channelBytes: Buffer, message: Buffer) => {
        if (message.length < HEADER_BYTES || message[0] !== VERSION) return;
        if (message.compare(origin, 0, ORIGIN_BYTES, 2, HEADER_BYTES) === 0) return; // our own publish
        const name = channelBytes.toString('utf8');
        if (!name.startsWith(prefix)) return;
        received++;
        deliver(name.slice(prefix.length), message.subarray(HEADER_BYTES), (message[1]! & FLAG_BINARY) !== 0);
      });
      try {
        await Promise.all([publisher.connect(), subscriber.connect()]);
        log.info({ url: redact(options.url) }, 'redis bridge connected');
      } catch (error) {
        // Not fatal: the server runs with local pub/sub, and ioredis keeps retrying.
        log.error({ url: redact(options.url), err: (error as Error).message }, 'redis bridge: broker unreachable at start; retrying in the background');
      }
    },

    subscribe(topic) {
      topics.add(topic);
      // Offline, the next 'ready' subscribes every topic in `topics`.
      if (subscriber?.status === 'ready') subscriber.subscribe(channel(topic)).catch(() => {});
    },

    unsubscribe(topic) {
      topics.delete(topic);
      if (subscriber?.status === 'ready') subscriber.unsubscribe(channel(topic)).catch(() => {});
    },

    publish(topic, payload, binary) {
      if (publisher === null || publisher.status !== 'ready') {
        dropped++;
        return;
      }
      const message = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
      message[0] = VERSION;
      message[1] = binary ? FLAG_BINARY : 0;
      origin.copy(message, 2);
      message.set(payload, HEADER_BYTES);
      published++;
      publisher.publish(channel(topic), message).catch(() => {
        published--;
        dropped++;
      });
    },

    stats(): BridgeStats {
      return {
        connected: publisher?.status === 'ready' && subscriber?.status === 'ready',
        published,
        received,
        dropped,
        outages,
        topics: topics.size,
      };
    },

    async close() {
      closing = true;
      const all = [publisher, subscriber].filter((r): r is Redis => r !== null);
      publisher = subscriber = null;
      await Promise.all(all.map((r) => r.quit().catch(() => r.disconnect())));
    },
  };
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return 'redis://(invalid url)';
  }
}
