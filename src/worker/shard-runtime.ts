import type { Logger } from 'pino';
import type { App, BridgeNotice, CountOptions, MessageData, PublishOptions, Shard, WorkerStats } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { ServerConfig } from '../shared/config.ts';
import { ByteArena } from '../shared/frame-writer.ts';
import { PresenceTable } from '../shared/presence-table.ts';
import { SlabPool } from '../shared/slab-pool.ts';
import type { PrimaryMessage, WorkerInit, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter, WorkerCounters } from '../shared/worker-counters.ts';
import { FlushScheduler } from '../runtime/frame-flush.ts';
import { createLogger } from '../runtime/logger.ts';
import { ThreadSampler } from '../runtime/thread-sampler.ts';
import { kApp, kLastActive, readingLimits } from './connection.ts';
import type { Connection, ConnectionContext } from './connection.ts';
import { ConnectionDirectory } from './connection-directory.ts';
import { HttpEndpoints } from './http-endpoints.ts';
import { IdleSweep } from './idle-sweep.ts';
import { LifetimeSweep } from './lifetime-sweep.ts';
import { PeerMesh } from './peer-mesh.ts';
import { ProxyGateway } from './proxy-gateway.ts';
import { RouteTable } from './route-table.ts';
import type { Route } from './route-table.ts';
import { slowClientPolicy } from './send-admission.ts';
import { SocketIntake } from './socket-intake.ts';
import { StallWatch } from './stall-watch.ts';
import { TopicRegistry, primaryBridgeLink } from './topic-registry.ts';
import { UpgradeHandler } from './upgrade.ts';
import { WorkerPresence } from './worker-presence.ts';

/** How often a worker proves it is alive (and refreshes its buffered-bytes figure for the balancer). */
const HEARTBEAT_MS = 250;

/**
 * ShardRuntime is one worker thread put together: the app, the socket intake that turns
 * sockets into connections, pub/sub with the other workers, the idle sweep, the heartbeat, and
 * the graceful shutdown. It answers the primary's messages; each part does its own job.
 */
export class ShardRuntime {
  readonly #init: WorkerInit;
  readonly #config: ServerConfig;
  readonly #logger: Logger;
  readonly #counters: WorkerCounters;
  readonly #slot: Float64Array;
  readonly #mesh: PeerMesh;
  readonly #topics: TopicRegistry;
  readonly #connections = new Set<Connection>();
  /** Connections with messages queued behind a slow socket: only their backlog counts for load. */
  readonly #backlogged = new Set<Connection>();
  readonly #idle: IdleSweep<Connection>;
  readonly #stalls: StallWatch;
  readonly #lifetime: LifetimeSweep<Connection>;
  readonly #directory: ConnectionDirectory<Connection>;
  readonly #post: (message: WorkerMessage) => void;
  /** Every app the routes load, each started and stopped once. */
  #apps: readonly App<unknown>[] = [];
  #intake: SocketIntake | null = null;
  #routes: RouteTable | null = null;
  /** A reload's new app instances, loaded and started, until the primary says switch or drop. */
  #reload: { readonly generation: number; readonly next: Map<Route, App<unknown>>; readonly started: readonly App<unknown>[] } | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #sampler: ThreadSampler | null = null;
  #stopping = false;
  /** Cluster-wide counts asked of the primary, by request number. */
  readonly #counting = new Map<number, (count: number) => void>();
  #requests = 0;
  readonly shard: Shard;

  constructor(init: WorkerInit, post: (message: WorkerMessage) => void) {
    this.#init = init;
    this.#config = init.config;
    this.#post = post;
    this.#logger = createLogger(init.config.logLevel, init.config.logFormat, { worker: init.id });
    this.#counters = new WorkerCounters(init.counters);
    this.#slot = this.#counters.slot(init.id);
    const pool = SlabPool.attach(init.pool, { worker: init.id });
    this.#mesh = new PeerMesh(init.id, init.generation, pool, init.config.poolThreshold, this.#logger);
    const presence = new WorkerPresence(PresenceTable.attach(init.presence), init.id, this.#logger);
    const config = init.config;
    const bridged = config.bridged;
    const link = bridged !== false ? primaryBridgeLink(post, bridged === 'durable') : config.clustered ? primaryBridgeLink(post, false, false) : null;
    // Broadcasts compress with the server's deflate settings, or a route's when only routes set it:
    // a topic's subscribers may be on any route, and every negotiated connection reads the frame.
    const broadcastDeflate = config.deflate ?? config.routes.find((route) => route.deflate !== null)?.deflate ?? null;
    this.#topics = new TopicRegistry(this.#mesh, broadcastDeflate, this.#slot, link, presence);
    const directory = new ConnectionDirectory<Connection>(init.serverId, init.id, init.generation, this.#mesh, presence);
    this.#directory = directory;
    if (config.clustered) {
      directory.linkCluster({
        direct: (server, message) => post({ type: 'cluster-direct', server, message }),
        tagged: (message) => post({ type: 'cluster-tagged', message }),
        tagHeld: (key, held) => post({ type: 'tag-interest', key, held }),
      });
    }
    this.#mesh.attachDirect((message) => directory.receive(message));
    this.#lifetime = new LifetimeSweep(this.#connections, (connection) => directory.openedAt(connection), config.maxLifetime);
    this.#idle = new IdleSweep(this.#connections, (connection) => connection[kLastActive], {
      idleTimeoutMs: init.config.idleTimeout * 1000,
      sendPings: init.config.sendPings,
      logger: this.#logger,
    });
    this.#stalls = new StallWatch(this.#backlogged, init.config.slowClientTimeout * 1000);
    const topics = this.#topics;
    const counters = this.#counters;
    this.shard = {
      id: init.id,
      count: init.config.workers,
      logger: this.#logger,
      publish: ((topic: string, data: MessageData, options?: PublishOptions) => topics.publish(topic, data, options, null)) as Shard['publish'],
      subscriberCount: ((topic: string, options?: CountOptions) => {
        if (options?.scope !== 'cluster') return topics.subscriberCount(topic);
        // Without a cluster directory this server is the whole cluster.
        return config.clustered ? this.#askCluster(topic) : Promise.resolve(topics.subscriberCount(topic));
      }) as Shard['subscriberCount'],
      connectionCount: ((options?: CountOptions) => {
        if (options?.scope !== 'cluster') return counters.openConnections();
        return config.clustered ? this.#askCluster(null) : Promise.resolve(counters.openConnections());
      }) as Shard['connectionCount'],
      send: (id, data, options) => directory.send(id, data, options),
      close: (id, code, reason) => directory.close(id, code, reason),
      sendTo: (key, data, options) => directory.sendTo(key, data, options),
      closeAll: (key, code, reason) => directory.closeAll(key, code, reason),
      connections: () => directory.list(),
      stats: (): WorkerStats[] => counters.allStats(),
    };
  }

  async start(): Promise<void> {
    const config = this.#config;
    // What every connection of the worker shares; each route sets its app and limits on it.
    const base: ConnectionContext = {
      app: {},
      shard: this.shard,
      logger: this.#logger,
      arena: new ByteArena(),
      scheduler: new FlushScheduler(),
      counters: this.#slot,
      maxPayloadLength: config.maxPayloadLength,
      reading: readingLimits(config),
      autoPong: config.autoPong,
      limits: { highWaterMark: config.highWaterMark, maxBackpressure: config.maxBackpressure },
      lowWaterMark: config.lowWaterMark,
      slowClient: slowClientPolicy(config.slowClient, {}, this.#logger),
      close: { closeTimeoutMs: config.closeTimeout * 1000, logger: this.#logger },
      topics: this.#topics,
      directory: this.#directory,
      idle: this.#idle,
      backlogged: this.#backlogged,
      closed: (connection) => this.#connections.delete(connection),
    };
    const routes = await RouteTable.load(config, base, this.#logger);
    this.#routes = routes;
    this.#apps = routes.apps;
    // A subscriber's `stamp` and `recovery` are those of its route's app.
    this.#topics.useHooks({ appOf: (connection) => connection[kApp], logger: this.#logger });
    this.#intake = new SocketIntake({
      config,
      logger: this.#logger,
      counters: this.#counters,
      slot: this.#slot,
      upgrade: new UpgradeHandler(routes, new ProxyGateway(this.#logger), this.shard, this.#logger, this.#slot),
      endpoints: new HttpEndpoints(config, this.#counters, routes, this.shard, this.#logger),
      connections: this.#connections,
    });
    this.#sampler = new ThreadSampler(this.#slot);
    this.#beat();
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#idle.start();
    this.#stalls.start();
    this.#lifetime.start();
    for (const app of this.#apps) await app.start?.(this.shard, config.appOptions);
    if (this.#init.accept.mode === 'reuseport') await this.#intake.listenReusePort(this.#init.accept);
    this.#post({ type: 'ready' });
  }

  onMessage(message: PrimaryMessage): void {
    switch (message.type) {
      case 'socket':
        this.#intake!.adopt(message.socket);
        return;
      case 'peer':
        this.#mesh.add(message.worker, message.generation, message.port);
        return;
      case 'peer-gone':
        this.#mesh.remove(message.worker);
        return;
      case 'publish':
        this.#topics.publish(message.topic, message.data, { binary: message.binary }, null, message.fromBridge);
        return;
      case 'shutdown':
        void this.#shutdown(message.grace);
        return;
      case 'drain':
        void this.#shutdown(message.grace, message.spread);
        return;
      case 'direct':
        this.#directory.receive(message);
        return;
      case 'cluster-count':
        this.#counting.get(message.request)?.(message.count);
        this.#counting.delete(message.request);
        return;
      case 'reload-prepare':
        void this.#prepareReload(message.generation);
        return;
      case 'reload-finish':
        void this.#finishReload(message.generation, message.commit);
        return;
      case 'tls-reload':
        this.#intake!.reloadTls(message.tls);
        return;
      case 'entry':
        this.#topics.deliverEntry(message.topic, message.id, message.data, message.binary, message.except);
        return;
      case 'published':
        this.#topics.published(message.ticket, message.id, message.error);
        return;
      case 'replay':
        this.#topics.replayed(message.ticket, message.entries, message.complete);
        return;
      case 'bridge-notice':
        this.#bridgeNotice(message.notice);
        return;
    }
  }

  /** Every app of the worker hears about the bridge (each route's app has its own handler). */
  #bridgeNotice(notice: BridgeNotice): void {
    for (const app of this.#apps) {
      try {
        app.bridge?.(notice, this.shard);
      } catch (error) {
        this.#logger.error({ err: error, notice: notice.type }, 'app bridge handler threw');
      }
    }
  }

  /** A count across the cluster (a topic's subscribers, or with null connections), from the primary. */
  #askCluster(topic: string | null): Promise<number> {
    const request = ++this.#requests;
    return new Promise((resolve) => {
      this.#counting.set(request, resolve);
      this.#post({ type: 'cluster-count', request, topic });
    });
  }

  /** The heartbeat the primary's watchdog reads, and the bytes waiting on slow connections. */
  #beat(): void {
    this.#slot[Counter.Heartbeat] = Date.now();
    // Only connections with a backlog are summed: the rest hold less than a high-water mark
    // each, and walking every connection four times a second costs real time at tens of
    // thousands of them.
    let buffered = 0;
    for (const connection of this.#backlogged) buffered += connection.bufferedAmount;
    this.#slot[Counter.BufferedBytes] = buffered;
    this.#sampler?.sample();
  }

  /**
   * Loads and starts a new instance of the app modules beside the running one, and tells the
   * primary whether that worked; nothing switches until every worker has it (`#finishReload`).
   */
  async #prepareReload(generation: number): Promise<void> {
    const started: App<unknown>[] = [];
    try {
      const next = await this.#routes!.loadNewApps(generation);
      for (const app of new Set(next.values())) {
        await app.start?.(this.shard, this.#config.appOptions);
        started.push(app);
      }
      this.#reload = { generation, next, started };
      this.#post({ type: 'reload-prepared', generation, error: null });
    } catch (error) {
      await this.#stopApps(started);
      this.#post({ type: 'reload-prepared', generation, error: error instanceof Error ? error.message : String(error) });
    }
  }

  /** Switches every route (new and open connections) to the prepared apps and stops the old ones; or drops the prepared ones. */
  async #finishReload(generation: number, commit: boolean): Promise<void> {
    const reload = this.#reload;
    if (reload === null || reload.generation !== generation) return;
    this.#reload = null;
    if (!commit) {
      await this.#stopApps(reload.started);
      return;
    }
    const old = this.#apps;
    this.#routes!.switchApps(reload.next, this.#logger);
    this.#apps = this.#routes!.apps;
    this.#logger.debug({ reload: generation }, 'app reloaded');
    await this.#stopApps(old.filter((app) => !this.#apps.includes(app)));
  }

  async #stopApps(apps: readonly App<unknown>[]): Promise<void> {
    for (const app of apps) {
      try {
        await app.stop?.(this.shard);
      } catch (error) {
        this.#logger.error({ err: error }, 'app stop handler threw');
      }
    }
  }

  /**
   * Closes every connection with 1001, waits up to `grace` seconds for them, then stops. With
   * `spread` (a rolling restart), each connection is closed at a random moment within that many
   * seconds, so its client reconnects to the other workers without all of them at once.
   */
  async #shutdown(grace: number, spread = 0): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const intake = this.#intake!;
    intake.stop();
    const open = this.#connections.size;
    this.#logger[open > 0 ? 'info' : 'debug']({ connections: open, spread }, spread > 0 ? 'worker restarting: closing connections with 1001' : 'shutting down: closing connections with 1001');
    const reason = spread > 0 ? 'worker restarting' : 'server shutting down';
    const timers: NodeJS.Timeout[] = [];
    for (const connection of this.#connections) {
      if (spread <= 0) connection.close(CloseCode.GoingAway, reason);
      else timers.push(setTimeout(() => connection.close(CloseCode.GoingAway, reason), Math.random() * spread * 1000));
    }
    const deadline = Date.now() + (spread + grace) * 1000;
    while (this.#connections.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const timer of timers) clearTimeout(timer);
    for (const connection of this.#connections) connection.terminate();
    intake.closeAll();
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#sampler?.stop();
    this.#idle.stop();
    this.#stalls.stop();
    this.#lifetime.stop();
    await this.#stopApps(this.#apps);
    if (this.#reload !== null) await this.#stopApps(this.#reload.started);
    this.#mesh.close();
    this.#post({ type: 'stopped' });
  }
}
