import type { Logger } from 'pino';
import type { App, BridgeNotice, MessageData, PublishOptions, Shard, WorkerStats } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { ServerConfig } from '../shared/config.ts';
import { ByteArena } from '../shared/frame-writer.ts';
import { SlabPool } from '../shared/slab-pool.ts';
import type { PrimaryMessage, WorkerInit, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter, WorkerCounters } from '../shared/worker-counters.ts';
import { FlushScheduler } from '../runtime/frame-flush.ts';
import { createLogger } from '../runtime/logger.ts';
import { ThreadSampler } from '../runtime/thread-sampler.ts';
import { kApp, kLastActive, readingLimits } from './connection.ts';
import type { Connection, ConnectionContext } from './connection.ts';
import { HttpEndpoints } from './http-endpoints.ts';
import { IdleSweep } from './idle-sweep.ts';
import { PeerMesh } from './peer-mesh.ts';
import { ProxyGateway } from './proxy-gateway.ts';
import { RouteTable } from './route-table.ts';
import { slowClientPolicy } from './send-admission.ts';
import { SocketIntake } from './socket-intake.ts';
import { StallWatch } from './stall-watch.ts';
import { TopicRegistry, primaryBridgeLink } from './topic-registry.ts';
import { UpgradeHandler } from './upgrade.ts';

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
  readonly #post: (message: WorkerMessage) => void;
  /** Every app the routes load, each started and stopped once. */
  #apps: readonly App<unknown>[] = [];
  #intake: SocketIntake | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #sampler: ThreadSampler | null = null;
  #stopping = false;
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
    // Broadcasts compress with the server's deflate settings, or a route's when only routes set it:
    // a topic's subscribers may be on any route, and every negotiated connection reads the frame.
    const broadcastDeflate = init.config.deflate ?? init.config.routes.find((route) => route.deflate !== null)?.deflate ?? null;
    const bridged = init.config.bridged;
    this.#topics = new TopicRegistry(this.#mesh, broadcastDeflate, this.#slot, bridged === false ? null : primaryBridgeLink(post, bridged === 'durable'));
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
      subscriberCount: (topic: string) => topics.subscriberCount(topic),
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
      idle: this.#idle,
      backlogged: this.#backlogged,
      closed: (connection) => this.#connections.delete(connection),
    };
    const routes = await RouteTable.load(config, base, this.#logger);
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

  /** Closes every connection with 1001, waits up to `grace` seconds for them, then stops. */
  async #shutdown(grace: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const intake = this.#intake!;
    intake.stop();
    const open = this.#connections.size;
    this.#logger[open > 0 ? 'info' : 'debug']({ connections: open }, 'shutting down: closing connections with 1001');
    for (const connection of this.#connections) connection.close(CloseCode.GoingAway, 'server shutting down');
    const deadline = Date.now() + grace * 1000;
    while (this.#connections.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const connection of this.#connections) connection.terminate();
    intake.closeAll();
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#sampler?.stop();
    this.#idle.stop();
    this.#stalls.stop();
    for (const app of this.#apps) {
      try {
        await app.stop?.(this.shard);
      } catch (error) {
        this.#logger.error({ err: error }, 'app stop handler threw');
      }
    }
    this.#mesh.close();
    this.#post({ type: 'stopped' });
  }
}
