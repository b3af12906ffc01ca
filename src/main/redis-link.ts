/**
 * RedisLink is a server's connection to Redis for either bridge mode: a command client and pub/sub,
 * on a single Redis or on a Redis Cluster, told apart at connect time (`INFO cluster`) unless the
 * caller says. It keeps the set of subscribed channels itself and subscribes them again whenever
 * a subscription connection comes back, then says so (`resubscribed`): what was published in
 * between never reached this server, and the streams mode reads it back from the streams.
 *
 * On a single Redis: two connections, commands and subscriptions (a subscribed connection takes
 * no other commands), with PUBLISH/SUBSCRIBE. On a cluster: ioredis's Cluster, which routes each
 * command by key slot, and sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7): a channel lives on
 * the shard that owns its slot, so a topic's traffic goes through one node instead of being
 * broadcast over the cluster bus to all of them, and ioredis keeps one subscriber per master.
 */
import { Cluster, Redis } from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { BridgeLog } from './topic-bridge.ts';

export type RedisClient = Redis | Cluster;

export interface RedisLinkOptions {
  /** redis://[user:pass@]host:port[/db] or rediss://…; on a cluster, any node. */
  readonly url: string;
  /** Whether `url` is a cluster node; undefined: ask it (`INFO cluster`) when connecting. */
  readonly cluster: boolean | undefined;
  /** Longest pause between reconnection attempts, in milliseconds. */
  readonly maxReconnectDelay: number;
  /** What an outage means for the mode using the link, for the operator reading the log line. */
  readonly whileDown?: string;
  /** Lua scripts defined as commands on the command client (ioredis runs them by SHA, loading them where missing). */
  readonly scripts?: Readonly<Record<string, { readonly numberOfKeys: number; readonly lua: string }>>;
}

export interface RedisLinkEvents {
  /** A message on a subscribed channel (views of ioredis's read buffer, valid only now). */
  message(channel: Buffer, message: Buffer): void;
  /** A subscription connection went away or is being replaced: messages may be missed until `resubscribed`. */
  interrupted(): void;
  /** Every channel is subscribed again on a fresh subscription connection (also the first time). */
  resubscribed(): void;
  /** Redis became unreachable; `up` once commands and subscriptions work again. */
  down(): void;
  up(): void;
}

export class RedisLink {
  readonly #options: RedisLinkOptions;
  readonly #channels = new Set<string>();
  #events: RedisLinkEvents | null = null;
  #log: BridgeLog | null = null;
  #commands: RedisClient | null = null;
  /** On a single Redis, the subscription connection; on a cluster, the Cluster itself. */
  #subscriber: RedisClient | null = null;
  #sharded = false;
  #down = true;
  #outages = 0;
  #closing = false;
  /** The subscriptions on the current subscription connection are in place. */
  #subscribed = false;
  #probeTimer: NodeJS.Timeout | null = null;

  constructor(options: RedisLinkOptions) {
    this.#options = options;
  }

  /** Connects; never throws for an unreachable Redis (it keeps trying in the background). */
  async start(events: RedisLinkEvents, log: BridgeLog): Promise<void> {
    this.#events = events;
    this.#log = log;
    await this.#connect(0);
  }

  /** Commands and subscriptions both work. */
  get ready(): boolean {
    return !this.#down;
  }

  /** The command client, while connected. */
  get commands(): RedisClient | null {
    return this.#down ? null : this.#commands;
  }

  /** A cluster: channels are shard channels (SPUBLISH/SSUBSCRIBE). */
  get sharded(): boolean {
    return this.#sharded;
  }

  get outages(): number {
    return this.#outages;
  }

  get url(): string {
    return redact(this.#options.url);
  }

  /**
   * Subscribes `channel` (kept across reconnects). Resolves true once Redis confirmed it on the
   * current connection, false when it could not now (offline): `resubscribed` covers it later.
   */
  async subscribe(channel: string): Promise<boolean> {
    this.#channels.add(channel);
    const subscriber = this.#subscriber;
    if (subscriber === null || !this.#subscribed) return false;
    try {
      await (this.#sharded ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel));
      return this.#channels.has(channel);
    } catch {
      return false;
    }
  }

  unsubscribe(channel: string): void {
    if (!this.#channels.delete(channel)) return;
    const subscriber = this.#subscriber;
    if (subscriber === null || !this.#subscribed) return;
    (this.#sharded ? subscriber.sunsubscribe(channel) : subscriber.unsubscribe(channel)).catch(() => {});
  }

  /** PUBLISH, or SPUBLISH on a cluster. Rejects at once while offline (nothing is queued). */
  publish(channel: string, message: Buffer): Promise<unknown> {
    const commands = this.commands;
    if (commands === null) return Promise.reject(new Error('redis is unreachable'));
    return this.#sharded ? commands.spublish(channel, message) : commands.publish(channel, message);
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#probeTimer !== null) clearTimeout(this.#probeTimer);
    const clients = [...new Set([this.#commands, this.#subscriber])].filter((c): c is RedisClient => c !== null);
    this.#commands = this.#subscriber = null;
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  }

  /** Finds out what `url` is (unless told), then opens the clients; retried with back-off. */
  async #connect(attempt: number): Promise<void> {
    if (this.#closing) return;
    let cluster = this.#options.cluster;
    try {
      cluster ??= await this.#isCluster();
    } catch (error) {
      const delay = Math.min(this.#options.maxReconnectDelay, 50 * 2 ** Math.min(attempt, 10));
      if (attempt === 0) {
        // Not fatal: the server runs with local pub/sub meanwhile.
        this.#log?.error({ url: this.url, err: (error as Error).message }, 'redis bridge: broker unreachable at start; retrying in the background');
        this.#outages++;
      }
      this.#probeTimer = setTimeout(() => void this.#connect(attempt + 1), delay);
      return;
    }
    if (cluster) this.#openCluster();
    else this.#openStandalone();
    try {
      await Promise.all([...new Set([this.#commands!, this.#subscriber!])].map((client) => client.connect()));
    } catch (error) {
      // ioredis keeps retrying on its own from here.
      this.#log?.error({ url: this.url, err: (error as Error).message }, 'redis bridge: could not connect yet; retrying in the background');
    }
  }

  async #isCluster(): Promise<boolean> {
    const probe = new Redis(this.#options.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    probe.on('error', () => {});
    try {
      await probe.connect();
      return /^cluster_enabled:1\b/m.test(await probe.info('cluster'));
    } finally {
      probe.disconnect();
    }
  }

  #retry = (attempt: number): number => Math.min(this.#options.maxReconnectDelay, 50 * 2 ** Math.min(attempt, 10));

  #openStandalone(): void {
    const options: RedisOptions = {
      lazyConnect: true,
      // A command made while Redis is away fails at once instead of queueing without bound;
      // the bridges decide what to do with it.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Subscriptions are restored from #channels on every 'ready' instead: ioredis's own list
      // would bring back a channel whose unsubscribe failed during the outage.
      autoResubscribe: false,
      retryStrategy: this.#retry,
    };
    const commands = new Redis(this.#options.url, options);
    const subscriber = new Redis(this.#options.url, options);
    this.#commands = commands;
    this.#subscriber = subscriber;
    this.#defineScripts(commands);
    this.#watch(commands, 'commands');
    this.#watch(subscriber, 'subscribe');
    subscriber.on('close', () => {
      this.#subscribed = false;
      this.#events?.interrupted();
    });
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#events?.message(channel, message));
  }

  #openCluster(): void {
    const url = new URL(this.#options.url);
    const redisOptions: ClusterOptions['redisOptions'] = {
      maxRetriesPerRequest: 0,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    };
    const cluster = new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
      lazyConnect: true,
      enableOfflineQueue: false,
      shardedSubscribers: true,
      clusterRetryStrategy: this.#retry,
      redisOptions,
    });
    this.#sharded = true;
    this.#commands = cluster;
    this.#subscriber = cluster;
    this.#defineScripts(cluster);
    this.#watch(cluster, 'cluster');
    cluster.on('close', () => {
      this.#subscribed = false;
      this.#events?.interrupted();
    });
    // ioredis replaces a shard's subscriber after a failure (emitted right after it sends the
    // new subscriptions, before any message can arrive on them) and subscribes its channels again
    // without waiting for the answer; subscribing them once more, awaited, tells when they are in.
    cluster.on('subscribersReady', () => {
      this.#events?.interrupted();
      if (!this.#down) void this.#resubscribe();
    });
    cluster.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.#events?.message(channel, message));
  }

  #defineScripts(client: RedisClient): void {
    for (const [name, script] of Object.entries(this.#options.scripts ?? {})) client.defineCommand(name, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  }

  #watch(client: RedisClient, role: string): void {
    client.on('error', (error: Error) => {
      if (!this.#down) this.#log?.warn({ role, err: error.message }, 'redis bridge: broker error');
    });
    client.on('close', () => {
      if (this.#closing || this.#down) return;
      this.#down = true;
      this.#outages++;
      const meaning = this.#options.whileDown === undefined ? '' : `; ${this.#options.whileDown}`;
      this.#log?.error({ role, url: this.url }, `redis bridge: lost the broker, reconnecting${meaning}`);
      this.#events?.down();
    });
    client.on('ready', () => void this.#ready(0));
  }

  /** Both connections are ready (on a cluster, every master's too): up, and subscribed again. */
  async #ready(attempt: number): Promise<void> {
    if (this.#closing || this.#commands?.status !== 'ready' || this.#subscriber?.status !== 'ready') return;
    if (this.#down && this.#sharded) {
      // ioredis's cluster client sends a command to a master whose connection is still opening,
      // fails it and sends it again, elsewhere first, behind commands made after it: the masters'
      // connections must be open before anything that needs its order is sent.
      try {
        await Promise.all((this.#commands as Cluster).nodes('master').map((node) => node.ping()));
      } catch {
        setTimeout(() => void this.#ready(attempt + 1), this.#retry(attempt)).unref();
        return;
      }
      if (this.#closing || this.#commands?.status !== 'ready') return;
    }
    if (this.#down) {
      this.#down = false;
      this.#log?.info({ url: this.url, cluster: this.#sharded }, 'redis bridge connected');
      this.#events?.up();
    }
    if (!this.#subscribed) await this.#resubscribe();
  }

  async #resubscribe(): Promise<void> {
    const subscriber = this.#subscriber;
    if (subscriber === null) return;
    const done = new Set<string>();
    try {
      // Channels subscribed or dropped meanwhile (subscribe() waits for this) are seen to as well.
      for (let unsent = [...this.#channels]; unsent.length > 0; unsent = [...this.#channels].filter((c) => !done.has(c))) {
        if (this.#sharded) await Promise.all(unsent.map((channel) => subscriber.ssubscribe(channel)));
        else await subscriber.subscribe(...unsent);
        for (const channel of unsent) done.add(channel);
      }
      const dropped = [...done].filter((channel) => !this.#channels.has(channel));
      if (dropped.length > 0) await (this.#sharded ? Promise.all(dropped.map((channel) => subscriber.sunsubscribe(channel))) : subscriber.unsubscribe(...dropped));
    } catch (error) {
      // The connection went away again: its next 'ready' tries again.
      this.#log?.warn({ err: (error as Error).message }, 'redis bridge: resubscribing failed');
      return;
    }
    if (subscriber !== this.#subscriber || this.#closing) return;
    this.#subscribed = true;
    this.#events?.resubscribed();
  }
}

export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return 'redis://(invalid url)';
  }
}
