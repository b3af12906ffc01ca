/**
 * redisCluster: the ClusterDirectory on Redis (ioredis, as the bridge). What it keeps there,
 * under the prefix:
 *
 * - `servers`: a sorted set of live servers, scored by when each one's heartbeat expires. Every
 *   count and every route reads only servers whose score is in the future, so a crashed server
 *   stops counting `ttl` seconds after its last heartbeat, on its own.
 * - `topics:<server>`: each server's subscriber counts (a hash, topic → count), and `conns`
 *   (server → open connections); both written only by their server, on its heartbeat.
 * - `tag:<key>`: the servers holding connections tagged `key` (a set), and `tags-of:<server>`,
 *   the keys a server holds, so that a dead server's entries are removed by whoever notices it
 *   is dead (each heartbeat reaps a bounded number of them).
 * - channel `direct:<server>`: direct messages for one server's connections. `sendTo(key)` goes
 *   to the servers in `tag:<key>` only, by one script call: no broker subscription per key.
 *
 * The scripts read keys they compute, so this runs on one Redis (or a replicated primary), not a
 * Redis Cluster.
 */
import { Redis } from 'ioredis';
import type { DirectAction, DirectMessage, DirectTarget } from '../shared/thread-messages.ts';
import type { ClusterDirectory, ServerReport } from './cluster-directory.ts';
import type { BridgeLog } from './topic-bridge.ts';

export interface RedisClusterOptions {
  /** redis://[user:pass@]host:port[/db] */
  readonly url: string;
  /** Prefix of every key and channel (default "shardws:"). */
  readonly prefix?: string;
  /** Seconds a server's counts and routes outlive its last heartbeat (default 10; it beats every third of that). */
  readonly ttl?: number;
}

/** Dead servers reaped per heartbeat, and tag entries per dead server per heartbeat. */
const REAP_SERVERS = 4;
const REAP_TAGS = 1000;

/** KEYS: servers, topics:<self>, conns. ARGV: now, expiry, self, connections, ttl ms, n sets, (topic, count) × n, prefix. */
const HEARTBEAT = `
local now, expiry, self = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
redis.call('ZADD', KEYS[1], expiry, self)
redis.call('HSET', KEYS[3], self, ARGV[4])
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  local topic, count = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
  if count == '0' then redis.call('HDEL', KEYS[2], topic) else redis.call('HSET', KEYS[2], topic, count) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local prefix = ARGV[7 + 2 * n]
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ${REAP_SERVERS})
for _, server in ipairs(dead) do
  local keys = redis.call('SPOP', prefix .. 'tags-of:' .. server, ${REAP_TAGS})
  for _, key in ipairs(keys) do redis.call('SREM', prefix .. 'tag:' .. key, server) end
  if redis.call('SCARD', prefix .. 'tags-of:' .. server) == 0 then
    redis.call('ZREM', KEYS[1], server)
    redis.call('HDEL', KEYS[3], server)
    redis.call('DEL', prefix .. 'topics:' .. server)
  end
end
return #dead
`;

/** KEYS: servers. ARGV: now, self, prefix, topic. The topic's subscribers on the other live servers. */
const SUBSCRIBERS = `
local total = 0
for _, server in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  if server ~= ARGV[2] then total = total + (tonumber(redis.call('HGET', ARGV[3] .. 'topics:' .. server, ARGV[4])) or 0) end
end
return total
`;

/** KEYS: servers, conns. ARGV: now, self. */
const CONNECTIONS = `
local total = 0
for _, server in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  if server ~= ARGV[2] then total = total + (tonumber(redis.call('HGET', KEYS[2], server)) or 0) end
end
return total
`;

/** KEYS: servers, tag:<key>. ARGV: now, self, prefix, message. Publishes to each other live holder; returns how many. */
const TAGGED = `
local sent = 0
for _, server in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if server ~= ARGV[2] then
    local expiry = tonumber(redis.call('ZSCORE', KEYS[1], server))
    if expiry ~= nil and expiry > tonumber(ARGV[1]) then
      redis.call('PUBLISH', ARGV[3] .. 'direct:' .. server, ARGV[4])
      sent = sent + 1
    end
  end
end
return sent
`;

/** A direct message on the wire: a JSON line of everything but the data, then the data's bytes. */
export function encodeDirect(message: DirectMessage): Buffer {
  const { action } = message;
  const head = action.kind === 'send' ? { t: message.target, k: 's', b: action.binary, c: action.compress, p: action.priority } : { t: message.target, k: 'c', code: action.code, r: action.reason };
  const line = Buffer.from(`${JSON.stringify(head)}\n`);
  return action.kind === 'send' ? Buffer.concat([line, action.data]) : line;
}

export function decodeDirect(bytes: Buffer): DirectMessage | null {
  const end = bytes.indexOf(0x0a);
  if (end < 0) return null;
  let head: { t?: DirectTarget; k?: string; b?: boolean; c?: boolean; p?: 'high' | 'normal' | 'low'; code?: number; r?: string };
  try {
    head = JSON.parse(bytes.toString('utf8', 0, end)) as typeof head;
  } catch {
    return null;
  }
  const target = head.t;
  if (typeof target !== 'object' || target === null || !('id' in target || 'tag' in target)) return null;
  let action: DirectAction;
  if (head.k === 's') action = { kind: 'send', data: new Uint8Array(bytes.subarray(end + 1)), binary: head.b === true, compress: head.c, priority: head.p ?? 'normal' };
  else if (head.k === 'c') action = { kind: 'close', code: head.code ?? 1000, reason: head.r ?? '' };
  else return null;
  return { type: 'direct', target, action };
}

export function redisCluster(options: RedisClusterOptions): ClusterDirectory {
  const prefix = options.prefix ?? 'shardws:';
  const ttl = options.ttl ?? 10;
  if (!(ttl > 0)) throw new RangeError(`redisCluster: ttl must be a positive number of seconds, got ${String(options.ttl)}`);
  const serversKey = `${prefix}servers`;
  const connsKey = `${prefix}conns`;
  let self = '';
  let commands: Redis | null = null;
  let subscriber: Redis | null = null;
  let log: BridgeLog | null = null;
  /** The command connection came back since the last heartbeat. */
  let reconnected = false;
  /** On a Redis Cluster: nothing is kept in Redis, and this server's counts and routes stay its own. */
  let inert = false;

  const connection = (role: string): Redis => {
    const redis = new Redis(options.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: (attempt) => Math.min(5000, 50 * 2 ** Math.min(attempt, 10)) });
    redis.on('error', (error: Error) => log?.warn({ role, err: error.message }, 'redis cluster directory: broker error'));
    return redis;
  };
  /** Runs a command; a broker that is down loses it (logged), as a publish is lost. */
  const attempt = <T>(what: string, run: (redis: Redis) => Promise<T>, fallback: T): Promise<T> => {
    if (commands === null || commands.status !== 'ready') return Promise.resolve(fallback);
    return run(commands).catch((error: unknown) => {
      log?.warn({ err: (error as Error).message }, `redis cluster directory: ${what} failed`);
      return fallback;
    });
  };

  return {
    ttl,
    async start(serverId, deliver, bridgeLog) {
      self = serverId;
      log = bridgeLog;
      commands = connection('commands');
      let readies = 0;
      commands.on('ready', () => {
        if (++readies > 1) reconnected = true;
      });
      subscriber = connection('subscriber');
      subscriber.on('messageBuffer', (_channel: Buffer, payload: Buffer) => {
        const message = decodeDirect(payload);
        if (message === null) log?.warn({ bytes: payload.length }, 'redis cluster directory: a direct message it cannot read; dropped');
        else deliver(message);
      });
      await Promise.all([commands.connect(), subscriber.connect()]);
      // Its scripts compute key names (servers, tags), which a Redis Cluster cannot route.
      if (/cluster_enabled:1/.test(await commands.info('cluster'))) {
        inert = true;
        log.warn({}, 'redis cluster directory: Redis is a Redis Cluster; presence and addressing across servers need a single Redis, so counts, send(id) and sendTo(key) stay within this server');
        await Promise.all([commands.quit(), subscriber.quit()]);
        commands = null;
        subscriber = null;
        return;
      }
      await subscriber.subscribe(`${prefix}direct:${self}`);
    },
    heartbeat(report: ServerReport) {
      if (inert) return Promise.resolve(true);
      const now = Date.now();
      const pairs: string[] = [];
      for (const [topic, count] of report.topics) pairs.push(topic, String(count));
      const args = [String(now), String(now + ttl * 1000), self, String(report.connections), String(ttl * 2000), String(report.topics.size), ...pairs, prefix];
      const fresh = !reconnected;
      reconnected = false;
      return attempt('heartbeat', (redis) => redis.eval(HEARTBEAT, 3, serversKey, `${prefix}topics:${self}`, connsKey, ...args).then(() => fresh), false);
    },
    remoteSubscribers: (topic) => attempt('count', (redis) => redis.eval(SUBSCRIBERS, 1, serversKey, String(Date.now()), self, prefix, topic).then(Number), 0),
    remoteConnections: () => attempt('count', (redis) => redis.eval(CONNECTIONS, 2, serversKey, connsKey, String(Date.now()), self).then(Number), 0),
    tagHeld(key, held) {
      void attempt(
        'tag index',
        (redis) => {
          const multi = redis.multi();
          if (held) multi.sadd(`${prefix}tag:${key}`, self).sadd(`${prefix}tags-of:${self}`, key);
          else multi.srem(`${prefix}tag:${key}`, self).srem(`${prefix}tags-of:${self}`, key);
          return multi.exec();
        },
        null,
      );
    },
    sendDirect(server, message) {
      void attempt('direct message', (redis) => redis.publish(`${prefix}direct:${server}`, encodeDirect(message)), 0);
    },
    sendTagged(message) {
      const target = message.target;
      if (!('tag' in target)) return;
      void attempt('tagged message', (redis) => redis.eval(TAGGED, 2, serversKey, `${prefix}tag:${target.tag}`, String(Date.now()), self, prefix, encodeDirect(message)), 0);
    },
    async close() {
      // Leave at once rather than after the ttl: this server's counts and routes go now.
      await attempt('leave', (redis) => redis.multi().zadd(serversKey, 0, self).del(`${prefix}topics:${self}`).hdel(connsKey, self).exec(), null);
      await Promise.all([commands?.quit().catch(() => {}), subscriber?.quit().catch(() => {})]);
      commands = null;
      subscriber = null;
    },
  };
}
