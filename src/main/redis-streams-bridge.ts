/**
 * The streams mode of redisBridge (a DurableTopicBridge): each topic is a Redis stream, so every
 * message has an id that is the same on every server, stays for the retention, and can be read
 * again. The parts: RedisLink (connections, single Redis or cluster), RedisStreamStore (the
 * append script and the reads), StreamOutbox (this server's publishes, in order, through
 * outages) and StreamReader (the entries of the topics this server follows, each once, in order).
 */
import { randomBytes } from 'node:crypto';
import { ORIGIN_BYTES, readNotification, readStreamEnvelope, streamEnvelope } from './bridge-envelope.ts';
import { RedisLink } from './redis-link.ts';
import type { ResolvedRedisOptions } from './redis-bridge.ts';
import { StreamOutbox } from './stream-outbox.ts';
import { StreamReader } from './stream-reader.ts';
import { RedisStreamStore, STREAM_SCRIPTS } from './stream-store.ts';
import type { Retention } from './stream-store.ts';
import type { BridgeLog, BridgeStats, DurableBridgeEvents, DurableTopicBridge } from './topic-bridge.ts';

export function redisStreamsBridge(options: ResolvedRedisOptions, retention: Retention, outageBuffer: number): DurableTopicBridge {
  const { prefix } = options;
  const origin = randomBytes(ORIGIN_BYTES);
  const link = new RedisLink({
    url: options.url,
    cluster: options.cluster,
    maxReconnectDelay: options.maxReconnectDelay,
    scripts: STREAM_SCRIPTS,
    whileDown: 'publishes wait in the outage buffer (nothing is delivered meanwhile) and go out in order once it is back',
  });
  const store = new RedisStreamStore(link, prefix, origin, retention);
  let events: DurableBridgeEvents | null = null;
  let log: BridgeLog | null = null;
  let sequence = 0;

  const reader = new StreamReader(
    store,
    (entry) => readStreamEnvelope(entry, origin),
    (topic, entry) => events?.entry(topic, entry),
    () => log,
  );
  const outbox = new StreamOutbox(
    store,
    outageBuffer,
    (count, topics) => {
      log?.error({ count, topics, outageBuffer }, 'redis bridge: the outage buffer is full; dropped the oldest publishes');
      events?.notice({ type: 'dropped', count, topics });
    },
    (topic, error) => log?.error({ topic, err: error.message }, 'redis bridge: redis refused a publish'),
  );

  return {
    durable: true,

    async start(bridgeEvents, bridgeLog) {
      events = bridgeEvents;
      log = bridgeLog;
      await link.start(
        {
          message(channel, message) {
            const name = channel.toString('utf8');
            if (!name.startsWith(prefix)) return;
            const notification = readNotification(message);
            if (notification !== null) reader.announced(name.slice(prefix.length), notification.id, notification.entry);
          },
          interrupted: () => reader.interrupted(),
          resubscribed: () => reader.resync(),
          down: () => events?.notice({ type: 'down' }),
          up() {
            const waiting = outbox.stats().buffered;
            if (waiting > 0) log?.info({ publishes: waiting }, 'redis bridge: writing the publishes that waited for the broker');
            events?.notice({ type: 'up' });
            outbox.resume();
            reader.resync();
          },
        },
        bridgeLog,
      );
    },

    subscribe: (topic) => reader.subscribe(topic),
    unsubscribe: (topic) => reader.unsubscribe(topic),

    append(topic, payload, binary, except) {
      sequence++;
      return outbox.push(topic, streamEnvelope(origin, sequence, payload, binary, except), sequence, reader.position(topic));
    },

    replay: (topic, since) => reader.replay(topic, since),

    stats(): BridgeStats {
      const sent = outbox.stats();
      const read = reader.stats();
      return {
        connected: link.ready,
        published: sent.published,
        received: read.received,
        dropped: sent.dropped,
        outages: link.outages,
        topics: read.topics,
        buffered: sent.buffered,
        bufferedBytes: sent.bufferedBytes,
        flushed: sent.flushed,
        confirmed: sent.confirmed,
        replays: read.replays,
        replayed: read.replayed,
      };
    },

    async close() {
      outbox.close();
      reader.close();
      await link.close();
    },
  };
}
