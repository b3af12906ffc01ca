import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { pathToFileURL } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { App, MessageData, SendOptions, Shard, WorkerStats } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { ServerConfig, TlsOptions } from '../shared/config.ts';
import { ByteArena } from '../shared/frame-writer.ts';
import { createLogger } from '../shared/logger.ts';
import { deflateMessageShared } from '../shared/permessage-deflate.ts';
import { refuse } from '../shared/refuse.ts';
import { SlabPool } from '../shared/slab-pool.ts';
import type { PrimaryMessage, WorkerInit, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter, WorkerCounters } from '../shared/worker-counters.ts';
import { Connection } from './connection.ts';
import type { ConnectionContext } from './connection.ts';
import { FlushScheduler } from './flush-scheduler.ts';
import { PeerMesh } from './peer-mesh.ts';
import { MetricsEndpoint } from './metrics.ts';
import { loadSecureContext } from './tls-context.ts';
import { TopicRegistry } from './topic-registry.ts';
import type { BridgeLink, SharedCompressor } from './topic-registry.ts';
import { rehomeSocket } from './socket-rehome.ts';
import { UpgradeHandler } from './upgrade.ts';

/** Resolves the app module named in the config; the built-in demo when none is. */
async function loadApp(spec: string | null): Promise<App<unknown>> {
  const url =
    spec === null ? new URL(`../demo/app${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href
    : /^[a-z][a-z0-9+.-]*:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec) ? spec
    : pathToFileURL(isAbsolute(spec) ? spec : resolve(process.cwd(), spec)).href;
  const module = (await import(url)) as { default?: App<unknown> };
  if (typeof module.default !== 'object' || module.default === null) {
    throw new TypeError(`app module ${url} has no default export (export default defineApp({...}))`);
  }
  return module.default;
}

/**
 * ShardRuntime is everything one worker thread runs: the non-listening HTTP server that sockets
 * from the primary enter, the upgrade, the connections, pub/sub with the other workers, the idle
 * sweep and the heartbeat, and the graceful shutdown.
 */
/** The error listener of a socket between its upgrade and its Connection (`this` is the socket). */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

export class ShardRuntime {
  readonly #init: WorkerInit;
  readonly #config: ServerConfig;
  readonly #logger: Logger;
  readonly #counters: WorkerCounters;
  readonly #slot: Float64Array;
  readonly #mesh: PeerMesh;
  readonly #topics: TopicRegistry;
  readonly #connections = new Set<Connection>();
  /** Sockets before their first request, with the timer that cuts a silent or slow one off. */
  readonly #handshaking = new Map<Duplex, NodeJS.Timeout>();
  /**
   * One 'close' listener shared by every socket still in its handshake (`this` is the socket),
   * removed once the handshake ends: a per-socket closure would stay on each open connection.
   */
  readonly #onHandshakeSocketClose: (this: Duplex) => void;
  /** A failed TLS handshake (a plain-TCP client, a bad certificate) closes only that socket. */
  readonly #onTlsError: (this: TLSSocket, error: Error) => void;
  #secureContext: SecureContext | null = null;
  #metrics: MetricsEndpoint | null = null;
  /** The worker's own listener, in SO_REUSEPORT mode only. */
  #listener: NetServer | null = null;
  readonly #server: Server;
  readonly #post: (message: WorkerMessage) => void;
  #app: App<unknown> = {};
  #upgrade: UpgradeHandler | null = null;
  #context: ConnectionContext | null = null;
  #timers: NodeJS.Timeout[] = [];
  #stopping = false;
  readonly shard: Shard;

  constructor(init: WorkerInit, post: (message: WorkerMessage) => void) {
    const runtime = this;
    this.#onHandshakeSocketClose = function (this: Duplex): void {
      runtime.#handshakeEnded(this);
    };
    this.#onTlsError = function (this: TLSSocket, error: Error): void {
      runtime.#logger.info({ remote: this.remoteAddress, err: error.message }, 'TLS handshake failed; closing the connection');
      this.destroy();
    };
    this.#init = init;
    this.#config = init.config;
    this.#post = post;
    this.#logger = createLogger(init.config.logLevel, { worker: init.id });
    this.#counters = new WorkerCounters(init.counters);
    this.#slot = this.#counters.slot(init.id);
    const pool = SlabPool.attach(init.pool, { worker: init.id });
    this.#mesh = new PeerMesh(init.id, init.generation, pool, init.config.poolThreshold, this.#logger);
    const deflate = init.config.deflate;
    const compressor: SharedCompressor | null =
      deflate !== null && deflate.mode === 'shared'
        ? (payload) => deflateMessageShared(payload, deflate.serverMaxWindowBits, deflate.level, deflate.memLevel)
        : null;
    const bridge: BridgeLink | null = init.config.bridged
      ? {
          interest: (topics, subscribed) => post({ type: 'interest', topics, subscribed }),
          // An exact copy: posting a view would clone its whole backing buffer.
          publish: (topic, payload, binary) => post({ type: 'bridge-publish', topic, data: new Uint8Array(payload), binary }),
        }
      : null;
    this.#topics = new TopicRegistry(this.#mesh, compressor, deflate?.threshold ?? 0, this.#slot, bridge);
    this.#mesh.bind({
      interest: (worker, topics, subscribed) => this.#topics.setRemoteInterest(worker, topics, subscribed),
      publish: (message, frames, release) => this.#topics.deliver(message, frames, release),
      joined: (worker) => this.#mesh.announce(this.#topics.localTopics, true, worker),
      left: (worker) => this.#topics.forgetWorker(worker),
    });
    const topics = this.#topics;
    const counters = this.#counters;
    this.shard = {
      id: init.id,
      count: init.config.workers,
      logger: this.#logger,
      publish: (topic: string, data: MessageData, options?: SendOptions) => topics.publish(topic, data, options, null),
      subscriberCount: (topic: string) => topics.subscriberCount(topic),
      stats: (): WorkerStats[] => counters.allStats(),
    };
    this.#server = createServer({
      // Node's own parser enforces these on the upgrade request (slowloris, header floods).
      headersTimeout: init.config.handshakeTimeout,
      requestTimeout: init.config.handshakeTimeout,
      maxHeaderSize: init.config.maxHeaderSize,
      connectionsCheckingInterval: Math.min(1000, init.config.handshakeTimeout),
      keepAliveTimeout: 5000,
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(error, socket));
  }

  async start(): Promise<void> {
    if (this.#config.tls !== null) this.#secureContext = loadSecureContext(this.#config.tls);
    this.#app = await loadApp(this.#config.app);
    this.#upgrade = new UpgradeHandler(this.#config, this.#app, this.shard, this.#logger, this.#slot);
    const config = this.#config;
    this.#context = {
      app: this.#app,
      shard: this.shard,
      logger: this.#logger,
      arena: new ByteArena(),
      flusher: new FlushScheduler(),
      counters: this.#slot,
      maxPayloadLength: config.maxPayloadLength,
      closeTimeoutMs: config.closeTimeout * 1000,
      highWaterMark: config.highWaterMark,
      lowWaterMark: config.lowWaterMark,
      maxBackpressure: config.maxBackpressure,
      slowClient: config.slowClient,
      topics: this.#topics,
      backlogged: new Set(),
      onClosed: (connection) => this.#connections.delete(connection),
    };
    this.#slot[Counter.Heartbeat] = Date.now();
    const heartbeat = setInterval(() => {
      this.#slot[Counter.Heartbeat] = Date.now();
      this.#slot[Counter.BufferedBytes] = this.#bufferedBytes();
    }, 250);
    this.#timers.push(heartbeat);
    if (config.idleTimeout > 0) this.#startIdleSweep(config.idleTimeout * 1000);
    await this.#app.start?.(this.shard);
    if (this.#init.accept.mode === 'reuseport') await this.#listenReusePort(this.#init.accept);
    this.#post({ type: 'ready' });
  }

  onMessage(message: PrimaryMessage): void {
    switch (message.type) {
      case 'socket':
        this.#adopt(rehomeSocket(message.socket));
        return;
      case 'peer':
        this.#mesh.add(message.worker, message.generation, message.port as MessagePort);
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
        this.#reloadTls(message.tls);
        return;
    }
  }

  /** Node < 26.6: this worker accepts on the shared port itself (SO_REUSEPORT). */
  async #listenReusePort(accept: { readonly port: number; readonly host: string | undefined; readonly backlog: number }): Promise<void> {
    const listener = createNetServer((socket) => {
      // No primary to count for us: every worker sees every worker's counters.
      const max = this.#config.maxConnections;
      if (max > 0 && this.#openConnections() >= max) {
        this.#slot[Counter.Refused]!++;
        this.#logger.warn({ remote: socket.remoteAddress }, 'server is at maxConnections; refusing with 503');
        refuse(socket, 503, 'server is at maxConnections');
        return;
      }
      this.#adopt(socket);
    });
    listener.on('error', (error) => this.#logger.error({ err: error }, 'listener error'));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ port: accept.port, host: accept.host, backlog: accept.backlog, reusePort: true }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.#listener = listener;
  }

  #openConnections(): number {
    let total = 0;
    for (let worker = 0; worker < this.#counters.workers; worker++) {
      total += this.#counters.get(worker, Counter.Connections) + this.#counters.get(worker, Counter.Handshakes);
    }
    return total;
  }

  /** A socket from the primary: it enters Node's HTTP server as if this worker accepted it. */
  #adopt(socket: Socket): void {
    this.#slot[Counter.SocketsAdopted]!++;
    if (this.#stopping) {
      refuse(socket, 503, 'server shutting down');
      return;
    }
    if (this.#slot[Counter.Handshakes]! >= this.#config.maxHandshakes) {
      this.#logger.warn({ remote: socket.remoteAddress }, 'too many handshakes in progress; refusing with 503');
      refuse(socket, 503, 'too many handshakes in progress');
      return;
    }
    this.#slot[Counter.Handshakes]!++;
    let entering: Duplex = socket;
    if (this.#secureContext !== null) {
      const secure = new TLSSocket(socket, { isServer: true, secureContext: this.#secureContext, ALPNProtocols: ['http/1.1'] });
      // A failed TLS handshake (a plain-TCP client, a bad certificate) closes only that socket.
      secure.on('error', this.#onTlsError);
      entering = secure;
    }
    // Node's parser bounds a request once it has started (headersTimeout); this also bounds a
    // client that connects and sends nothing, or stalls in the TLS handshake.
    const timer = setTimeout(() => {
      if (!this.#handshaking.has(entering)) return;
      this.#logger.info({ remote: socket.remoteAddress }, 'handshake timed out; closing the connection');
      entering.destroy();
    }, this.#config.handshakeTimeout);
    timer.unref();
    this.#handshaking.set(entering, timer);
    entering.on('close', this.#onHandshakeSocketClose);
    this.#server.emit('connection', entering);
  }

  #handshakeEnded(socket: Duplex): void {
    const timer = this.#handshaking.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    socket.off('close', this.#onHandshakeSocketClose);
    this.#handshaking.delete(socket);
    this.#slot[Counter.Handshakes]!--;
  }

  /** New connections get new certificates; open ones keep theirs. */
  #reloadTls(tls: TlsOptions | null): void {
    const options = tls ?? this.#config.tls;
    if (options === null) return;
    try {
      this.#secureContext = loadSecureContext(options);
      this.#logger.info('TLS certificates reloaded');
    } catch (error) {
      this.#logger.error({ err: (error as Error).message }, 'TLS reload failed; keeping the previous certificates');
    }
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#stopping) {
      this.#handshakeEnded(socket);
      refuse(socket, 503, 'server shutting down');
      return;
    }
    // Node's HTTP server stops listening for the socket's errors when it hands it over: until the
    // Connection listens, a reset (say, during an async upgrade handler) only closes it.
    socket.on('error', destroyOnError);
    // The socket counts as a handshake until it counts as a connection: maxConnections and the
    // balancer must see it while an async upgrade handler runs.
    this.#upgrade!.handle(req, socket).then(
      (accepted) => {
        if (accepted === null) {
          this.#handshakeEnded(socket);
          return;
        }
        if (socket.destroyed) {
          this.#handshakeEnded(socket);
          accepted.compression?.close();
          return;
        }
        (socket as Socket).setNoDelay?.(true);
        const connection = new Connection(socket, this.#context!, accepted);
        socket.off('error', destroyOnError);
        this.#connections.add(connection);
        // The connection counts itself when constructed: only then does the handshake stop counting.
        this.#handshakeEnded(socket);
        // The 101 goes out only now: a client that reacts to it (opens another connection, say)
        // finds this one counted once, as a connection, by the primary's maxConnections check.
        socket.write(accepted.response, 'latin1');
        connection.start(head);
      },
      (error: unknown) => {
        this.#handshakeEnded(socket);
        this.#logger.error({ err: error }, 'upgrade failed');
        socket.destroy();
      },
    );
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#handshakeEnded(req.socket);
    const config = this.#config;
    const path = req.url === undefined ? '' : req.url.split('?', 1)[0];
    if (path !== '' && req.method === 'GET') {
      if (path === config.statsPath) {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ workers: this.shard.stats() }));
        return;
      }
      if (path === config.metricsPath) {
        this.#metrics ??= new MetricsEndpoint(this.#counters);
        const metrics = this.#metrics;
        metrics.text().then(
          (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text),
          (error: unknown) => {
            this.#logger.error({ err: error }, 'metrics collection failed');
            res.writeHead(500).end();
          },
        );
        return;
      }
      if (path === config.healthPath) {
        const health = this.#health();
        res.writeHead(health.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(health));
        return;
      }
    }
    if (this.#app.http) {
      try {
        this.#app.http(req, res, this.shard);
      } catch (error) {
        this.#logger.error({ err: error, url: req.url }, 'app http handler threw');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('Internal Server Error');
      }
      return;
    }
    res.writeHead(426, { upgrade: 'websocket', connection: 'Upgrade', 'content-type': 'text/plain' }).end('Upgrade Required');
  }

  #onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    this.#handshakeEnded(socket);
    const code = error.code ?? '';
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.#logger.info({ code, status }, `bad HTTP request: ${error.message}`);
    if (socket.destroyed) return;
    if (code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  #startIdleSweep(idleMs: number): void {
    const period = Math.max(50, Math.min(1000, Math.floor(idleMs / 4)));
    const closeAt = Math.ceil(idleMs / period);
    const pingAt = Math.ceil(closeAt / 2);
    const sendPings = this.#config.sendPings;
    const sweep = setInterval(() => {
      for (const connection of this.#connections) {
        const ticks = ++connection.idleTicks;
        if (ticks >= closeAt) {
          this.#logger.debug({ remote: connection.remoteAddress }, 'idle timeout; closing with 1001');
          connection.close(CloseCode.GoingAway, 'idle timeout');
        } else if (sendPings && ticks >= pingAt && !connection.pingSent) {
          connection.pingSent = true;
          connection.ping();
        }
      }
    }, period);
    sweep.unref();
    this.#timers.push(sweep);
  }

  /** Every worker is healthy when its heartbeat is recent (they beat every 250 ms). */
  #health(): { status: 'ok' | 'degraded'; connections: number; workers: { worker: number; alive: boolean; heartbeatAgeMs: number; connections: number }[] } {
    const now = Date.now();
    const workers = [];
    let connections = 0;
    for (let worker = 0; worker < this.#counters.workers; worker++) {
      const beat = this.#counters.get(worker, Counter.Heartbeat);
      const age = beat === 0 ? -1 : now - beat;
      const open = this.#counters.get(worker, Counter.Connections);
      connections += open;
      workers.push({ worker, alive: age >= 0 && age < 2000, heartbeatAgeMs: age, connections: open });
    }
    return { status: workers.every((w) => w.alive) ? 'ok' : 'degraded', connections, workers };
  }

  /**
   * Bytes waiting on this worker's slow connections, for the balancer. Only connections with a
   * backlog are summed: the rest hold less than a high-water mark each, and walking every
   * connection four times a second costs real time at tens of thousands of them.
   */
  #bufferedBytes(): number {
    let total = 0;
    for (const connection of this.#context!.backlogged) total += connection.bufferedAmount;
    return total;
  }


  async #shutdown(grace: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#listener?.close();
    this.#logger.info({ connections: this.#connections.size }, 'shutting down: closing connections with 1001');
    for (const connection of this.#connections) connection.close(CloseCode.GoingAway, 'server shutting down');
    this.#server.closeIdleConnections();
    const deadline = Date.now() + grace;
    while (this.#connections.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const connection of this.#connections) connection.terminate();
    this.#server.closeAllConnections();
    for (const timer of this.#timers) clearInterval(timer);
    try {
      await this.#app.stop?.(this.shard);
    } catch (error) {
      this.#logger.error({ err: error }, 'app stop handler threw');
    }
    this.#mesh.close();
    this.#post({ type: 'stopped' });
  }
}
