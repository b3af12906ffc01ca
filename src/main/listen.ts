import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { CountOptions, Delivery, MessageData, SendOptions, WorkerStats } from '../shared/app.ts';
import { exactCopy, sendsBinary } from '../shared/app.ts';
import { resolveConfig } from '../shared/config.ts';
import type { ServerConfig, ServerOptions, TlsOptions } from '../shared/config.ts';
import { concreteLogFormat, createLogger } from '../runtime/logger.ts';
import type { Logger } from '../runtime/logger.ts';
import { refuse } from '../runtime/refuse.ts';
import { PresenceTable } from '../shared/presence-table.ts';
import { SlabPool } from '../shared/slab-pool.ts';
import { closeAction, sendAction } from '../worker/connection-directory.ts';
import { applyHeapGrowth } from './heap-growth.ts';
import type { ClusterDirectory } from './cluster-directory.ts';
import { ServerDirectory } from './server-directory.ts';
import { Counter, ServerCounter, WorkerCounters } from '../shared/worker-counters.ts';
import { LeastLoadedBalancer } from './balancer.ts';
import { acceptModeFor } from './accept-mode.ts';
import type { AcceptMode } from './accept-mode.ts';
import { BridgeRouter } from './bridge-router.ts';
import { ShardSupervisor } from './shard-supervisor.ts';
import { AdminListener } from './admin-listener.ts';
import { ThreadSampler } from '../runtime/thread-sampler.ts';
import { assertAppExists } from '../worker/app-loader.ts';
import type { AnyTopicBridge, BridgeStats } from './topic-bridge.ts';
import { UnixRelay } from './unix-relay.ts';

export interface ListenOptions extends ServerOptions {
  /** Close gracefully on SIGINT and SIGTERM (the CLI turns this on). */
  readonly handleSignals?: boolean;
  /** Joins this server's topics to other servers' (e.g. `redisBridge({ url })` from `shardws/redis`). */
  readonly bridge?: AnyTopicBridge;
  /**
   * Joins this server's connections and counts to other servers' (e.g. `redisCluster({ url })`):
   * `send(id)`, `sendTo(key)` and `{ scope: 'cluster' }` counts reach every server.
   */
  readonly cluster?: ClusterDirectory;
}

export interface ServerStats {
  readonly workers: readonly WorkerStats[];
  readonly connections: number;
  readonly restarts: number;
  readonly refused: number;
  readonly pool: { readonly pagesTotal: number; readonly pagesFree: number; readonly allocations: number };
  /** Present when a bridge joins this server to others. */
  readonly bridge?: BridgeStats;
}

export interface ShardServer {
  readonly config: ServerConfig;
  /** How connections reach the workers here: the `accept` option with 'auto' decided. */
  readonly accept: AcceptMode;
  readonly logger: Logger;
  /** The TCP address; on a Unix socket (`path`), `{ address: path, family: 'unix', port: 0 }`. */
  address(): AddressInfo;
  /** Where the admin listener (adminPort) listens; null without one. */
  adminAddress(): AddressInfo | null;
  stats(): ServerStats;
  /** Sends to every subscriber of `topic` on every worker. */
  publish(topic: string, data: MessageData, options?: SendOptions): void;
  /** Subscribers of `topic` on every worker (shared memory); `{ scope: 'cluster' }`: on every server, a promise. */
  subscriberCount(topic: string): number;
  subscriberCount(topic: string, options: { readonly scope: 'cluster' }): Promise<number>;
  subscriberCount(topic: string, options?: CountOptions): number | Promise<number>;
  /** Open connections on every worker; `{ scope: 'cluster' }`: on every server, a promise. */
  connectionCount(): number;
  connectionCount(options: { readonly scope: 'cluster' }): Promise<number>;
  connectionCount(options?: CountOptions): number | Promise<number>;
  /** Sends to the connection with this id, wherever it is ('forwarded'), or says it is 'gone'. */
  send(id: string, data: MessageData, options?: SendOptions): Delivery;
  /** Closes the connection with this id, wherever it is (`shard.close(id)` from a worker; `close()` here stops the server). */
  closeConnection(id: string, code?: number, reason?: string): Delivery;
  /** Sends to every connection tagged `key`, on every worker and server. */
  sendTo(key: string, data: MessageData, options?: SendOptions): void;
  /** Closes every connection tagged `key`, everywhere. */
  closeAll(key: string, code?: number, reason?: string): void;
  /**
   * Re-imports the app modules in every worker (a new module instance, `start` run on it) and
   * switches new and open connections to its handlers, `ws.data` and subscriptions kept; the
   * old instance gets `stop`. A module that fails to load anywhere changes nothing: rejects.
   * SIGUSR2 does the same (with handleSignals).
   */
  reload(): Promise<void>;
  /**
   * Replaces the workers one at a time: each one's connections get 1001 at random moments
   * within `spread` seconds (default 2), so they reconnect to the others, never all at once.
   */
  restartWorkers(options?: { readonly spread?: number }): Promise<void>;
  /** New TLS options for new connections, or (without) the configured files read again. */
  reloadTls(tls?: TlsOptions): void;
  /** Stops accepting, closes every connection with 1001 within the grace period, stops workers. */
  close(): Promise<void>;
}

const POOL_PAGE = 16 * 1024;

/** The URL a person would open: `localhost` for a wildcard address, brackets around IPv6. */
export function serverUrl(address: AddressInfo, tls: boolean): string {
  if (address.family === 'unix') return `unix:${address.address}`;
  const wildcard = address.address === '::' || address.address === '0.0.0.0';
  const host = wildcard ? 'localhost' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${tls ? 'https' : 'http'}://${host}:${address.port}`;
}

/** The one line that says the server is up, where, and (for the demo) what to open. */
export function readyMessage(url: string, config: ServerConfig, adminUrl: string | null = null): string {
  const workers = `${config.workers} worker${config.workers === 1 ? '' : 's'}`;
  const admin = adminUrl === null ? '' : `; metrics at ${adminUrl}/metrics`;
  return `listening on ${url} — ${workers}${config.app === null ? '; demo at /, echo at /echo' : ''}${admin}`;
}

/**
 * Starts a sharded WebSocket server: worker threads that run the app, and a listener on this
 * thread that hands each accepted TCP socket to the least-loaded worker.
 */
export async function listen(options: ListenOptions = {}): Promise<ShardServer> {
  const bridge = options.bridge;
  const config = resolveConfig(
    { ...options, logFormat: concreteLogFormat(options.logFormat) },
    availableParallelism(),
    bridge === undefined ? false : bridge.durable === true ? 'durable' : 'plain',
    options.cluster !== undefined,
  );
  assertAppExists(config.app);
  const mode = acceptModeFor(config.accept);
  if (config.path !== undefined && mode !== 'transfer') {
    throw new Error(
      config.accept === 'reuseport'
        ? "listen({ path }) takes accept: 'transfer': Unix socket connections reach the workers by socket transfer, not SO_REUSEPORT"
        : `listen({ path }) needs Node >= 26.6: Unix socket connections reach the workers by socket transfer (this is Node ${process.versions.node})`,
    );
  }
  const logger = createLogger(config.logLevel, config.logFormat, { role: 'primary' });
  // Before the first worker starts: its heap sizes its generations from the flag.
  applyHeapGrowth(config.heapGrowingPercent);
  let admin: AdminListener | null = null;
  const counters = new WorkerCounters(config.workers);
  const pool = SlabPool.create({ pageSize: POOL_PAGE, pageCount: Math.max(4, Math.floor(config.poolSize / POOL_PAGE)), maxWorkers: config.workers });
  const balancer = new LeastLoadedBalancer(counters);
  const presence = PresenceTable.create(config.presenceCapacity, config.workers);
  // This server's part of every connection id: 60 random bits, so servers never share one.
  const serverId = randomBytes(8).readBigUInt64BE().toString(36).slice(0, 12);
  let router: BridgeRouter | null = null;
  let directory: ServerDirectory | null = null;
  const supervisor = new ShardSupervisor(
    config,
    counters,
    pool,
    logger,
    {
      reset: (worker) => balancer.reset(worker),
      exited: (worker) => {
        router?.workerGone(worker);
        directory?.workerGone(worker);
      },
      interest: (worker, topics, subscribed) => {
        router?.interest(worker, topics, subscribed);
        directory?.topicInterest(worker, topics, subscribed);
      },
      bridgePublish: (worker, message) => router?.publish(worker, message),
      recover: (worker, message) => router?.recover(worker, message),
      cluster: (worker, request) => directory?.request(worker, request),
    },
    presence,
    serverId,
  );
  if (bridge !== undefined) {
    router = new BridgeRouter(
      bridge,
      { enter: (message, preferred) => supervisor.sendToAny(message, preferred), post: (worker, message) => supervisor.post(worker, message) },
      config.workers,
    );
    await router.start(logger.child({ component: 'bridge' }));
  }
  const connectionCount = (): number => {
    let total = 0;
    for (let worker = 0; worker < config.workers; worker++) total += counters.get(worker, Counter.Connections);
    return total;
  };
  directory = new ServerDirectory(serverId, presence, supervisor, connectionCount, options.cluster ?? null);
  await directory.start(logger.child({ component: 'cluster' }));
  // Refused sockets wait for the peer to close its side; close() must not wait for them.
  const refusing = new Set<Socket>();
  const refuseConnection = (socket: Socket, reason: string): void => {
    counters.server[ServerCounter.Refused]!++;
    logger.warn({ remote: socket.remoteAddress, reason }, 'refusing connection with 503');
    refusing.add(socket);
    socket.once('close', () => refusing.delete(socket));
    refuse(socket, 503, reason);
  };
  // Sockets still on their way to a worker count too, or a burst of accepts all gets in.
  const openConnections = (): number => {
    let inFlight = 0;
    for (let worker = 0; worker < config.workers; worker++) inFlight += balancer.inFlight(worker);
    return counters.openConnections() + inFlight;
  };

  const server: Server = createServer();
  // On a Unix socket the TCP listener is the primary's own, on loopback, for the relay only.
  const unix = config.path === undefined ? null : new UnixRelay(config.path, logger);
  server.on('connection', (socket: Socket) => {
    if (unix !== null) unix.accepted(socket, adopt);
    else adopt(socket);
  });
  const adopt = (socket: Socket): void => {
    if (mode === 'reuseport') {
      // Only while the workers start: the primary's listener then closes and they accept.
      refuseConnection(socket, 'server is starting');
      return;
    }
    // The socket must go to its worker before anything reads from it: decide and transfer now.
    // Under the workers' admission lock: a worker turning a handshake into a connection changes
    // two counters, and a read between them would miss the socket.
    if (config.maxConnections > 0 && counters.admitting(config.maxConnections, openConnections) >= config.maxConnections) {
      refuseConnection(socket, 'server is at maxConnections');
      return;
    }
    // A worker whose heartbeat is late is stuck: it gets nothing while another is on time.
    const now = Date.now();
    let worker = balancer.pick((w) => supervisor.isAccepting(w, now));
    if (worker < 0) worker = balancer.pick((w) => supervisor.isReady(w));
    if (worker < 0) {
      refuseConnection(socket, 'no worker is available');
      return;
    }
    balancer.sent(worker);
    supervisor.send(worker, { type: 'socket', socket }, [socket]);
  };
  const listenOnPort = (port: number, host = config.host): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, backlog: config.backlog, reusePort: mode === 'reuseport' }, () => {
        server.off('error', reject);
        resolve();
      });
    });

  try {
    if (unix !== null) {
      await supervisor.start({ mode: 'transfer' });
      await listenOnPort(0, '127.0.0.1');
      await unix.listen((server.address() as AddressInfo).port, config.backlog);
    } else if (mode === 'transfer') {
      await supervisor.start({ mode });
      await listenOnPort(config.port);
    } else {
      // Bind first to learn the port (it may be 0), then let every worker bind it too.
      await listenOnPort(config.port);
      const { port } = server.address() as AddressInfo;
      await supervisor.start({ mode, port, host: config.host, backlog: config.backlog });
    }
    if (config.adminPort !== null) admin = await AdminListener.start(config.adminPort, config.adminHost, counters, logger.child({ component: 'admin' }));
  } catch (error) {
    await supervisor.stop(0);
    await router?.close();
    await directory.close();
    unix?.close();
    server.close();
    throw error;
  }
  // Failing to bind was listen()'s rejection; from here a listener error is only logged.
  server.on('error', (error) => logger.error({ err: error }, 'listener error'));
  const address: AddressInfo = unix !== null ? { address: config.path!, family: 'unix', port: 0 } : (server.address() as AddressInfo);
  if (mode === 'reuseport') server.close();
  const url = serverUrl(address, config.tls !== null);
  const adminUrl = admin === null ? null : serverUrl(admin.address(), false);
  logger.info(
    { url, address: address.address, port: address.port, workers: config.workers, deflate: config.deflate?.preset ?? 'off', tls: config.tls !== null, accept: mode, ...(adminUrl === null ? {} : { admin: adminUrl }) },
    readyMessage(url, config, adminUrl),
  );
  // The primary's own row in the per-thread metrics (its event loop accepts every connection).
  const sampler = new ThreadSampler(counters.server);
  sampler.sample();
  const sampling = setInterval(() => sampler.sample(), 1000);
  sampling.unref();
  if (mode === 'reuseport' && config.accept === 'auto') {
    logger.info(`Node ${process.versions.node} cannot transfer sockets between threads, so each worker accepts on the port (SO_REUSEPORT) and the kernel spreads connections`);
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info('shutting down');
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onHangup);
      process.off('SIGUSR2', onReloadSignal);
      const listenerClosed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      for (const socket of refusing) socket.destroy();
      clearInterval(sampling);
      sampler.stop();
      // The Unix path stops taking connections at once; relayed ones close with their workers.
      unix?.stopAccepting();
      await Promise.all([listenerClosed, supervisor.stop(config.shutdownGrace), admin?.close()]);
      unix?.close();
      await router?.close();
      await directory?.close();
      logger.info('stopped');
    })();
    return closing;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal received');
    void close();
  };
  const reloadTls = (tls?: TlsOptions): void => {
    if (config.tls === null) throw new Error('reloadTls: this server was started without tls');
    supervisor.reloadTls(tls === undefined ? null : resolveConfig({ ...options, tls }, config.workers).tls);
  };
  const onHangup = (): void => {
    logger.info('SIGHUP: reloading TLS certificates');
    reloadTls();
  };
  const reload = async (): Promise<void> => {
    const started = performance.now();
    try {
      await supervisor.reload();
    } catch (error) {
      logger.error({ err: (error as Error).message }, (error as Error).message);
      throw error;
    }
    logger.info({ ms: Math.round(performance.now() - started) }, 'app reloaded in every worker');
  };
  const onReloadSignal = (): void => {
    logger.info('SIGUSR2: reloading the app');
    reload().catch(() => {});
  };
  if (options.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGUSR2', onReloadSignal);
    if (config.tls !== null) process.on('SIGHUP', onHangup);
  }

  return {
    config,
    accept: mode,
    logger,
    address: () => address,
    adminAddress: () => admin?.address() ?? null,
    stats: (): ServerStats => {
      const workers = counters.allStats();
      return {
        workers,
        connections: workers.reduce((sum, w) => sum + w.connections, 0),
        restarts: supervisor.restarts,
        refused: counters.server[ServerCounter.Refused]! + workers.reduce((sum, w) => sum + counters.get(w.worker, Counter.Refused), 0),
        pool: pool.stats(),
        ...(router !== null ? { bridge: router.stats() } : {}),
      };
    },
    publish: (topic, data, publishOptions) => {
      supervisor.sendToAny({ type: 'publish', topic, data: exactCopy(data), binary: sendsBinary(data, publishOptions?.binary), fromBridge: false });
    },
    subscriberCount: ((topic: string, countOptions?: CountOptions) =>
      countOptions?.scope === 'cluster' ? directory.subscriberCount(topic) : presence.count('topic', topic)) as ShardServer['subscriberCount'],
    connectionCount: ((countOptions?: CountOptions) => (countOptions?.scope === 'cluster' ? directory.connectionCount() : connectionCount())) as ShardServer['connectionCount'],
    send: (id, data, sendOptions) => directory.toId(id, () => sendAction(data, sendOptions)),
    closeConnection: (id, code, reason) => directory.toId(id, () => closeAction(code, reason)),
    sendTo: (key, data, sendOptions) => directory.toTag(key, sendAction(data, sendOptions)),
    closeAll: (key, code, reason) => directory.toTag(key, closeAction(code, reason)),
    reload,
    restartWorkers: (restartOptions) => supervisor.restartWorkers(restartOptions?.spread ?? 2),
    reloadTls,
    close,
  };
}
