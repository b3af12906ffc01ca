import { MessageChannel, Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { ServerConfig, TlsOptions } from '../shared/config.ts';
import type { PresenceTable } from '../shared/presence-table.ts';
import type { SlabPool } from '../shared/slab-pool.ts';
import type { AcceptSource, ClusterRequest, PrimaryMessage, WorkerInit, WorkerMessage } from '../shared/thread-messages.ts';
import { Counter, ServerCounter } from '../shared/worker-counters.ts';
import type { WorkerCounters } from '../shared/worker-counters.ts';

const SHARD_ENTRY = new URL(`../worker/shard${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Restart back-off: doubles from the first delay up to the last; reset after a stable run. */
const FIRST_RESTART_DELAY = 100;
const MAX_RESTART_DELAY = 10_000;
const STABLE_RUN = 30_000;
/**
 * A heartbeat this late (ms; a worker beats every 250) takes the worker out of balancing until
 * it beats again: its event loop is stuck, and a socket sent to it would wait, maybe until the
 * watchdog replaces it. Well short of any heartbeatTimeout, and long enough that a busy but
 * live worker keeps getting its share.
 */
export const LATE_HEARTBEAT_MS = 1000;

interface ShardSlot {
  readonly id: number;
  generation: number;
  worker: Worker | null;
  ready: boolean;
  /** Terminated for missing its heartbeat; its exit restarts it. */
  hung: boolean;
  /** Being replaced by restartWorkers(): takes no new connections, and its exit is expected. */
  draining: boolean;
  startedAt: number;
  restartDelay: number;
  restartTimer: NodeJS.Timeout | null;
  stopped: (() => void) | null;
}

/** What the supervisor tells the rest of the primary. */
export interface SupervisorEvents {
  /** A worker slot starts afresh (spawned, or its worker exited): counts from zero again. */
  reset(worker: number): void;
  /** A worker exited; its subscriptions are gone. */
  exited(worker: number): void;
  /** With a bridge: a worker's first subscriber to these topics came, or its last one left. */
  interest(worker: number, topics: readonly string[], subscribed: boolean): void;
  /** With a bridge: a publish made on this server, for the other servers. */
  bridgePublish(worker: number, message: Extract<WorkerMessage, { type: 'bridge-publish' }>): void;
  /** With a durable bridge: a connection subscribed with `since`. */
  recover(worker: number, message: Extract<WorkerMessage, { type: 'recover' }>): void;
  /** With a cluster directory: what a worker sends to other servers, or asks of them. */
  cluster?(worker: number, request: ClusterRequest): void;
}

/**
 * ShardSupervisor starts the worker threads, wires a MessagePort between every pair of them,
 * restarts any that exits or stops answering its heartbeat (with back-off, never touching the
 * others), and stops them all gracefully.
 */
export class ShardSupervisor {
  #config: ServerConfig;
  readonly #counters: WorkerCounters;
  readonly #pool: SlabPool;
  readonly #logger: Logger;
  readonly #slots: ShardSlot[];
  readonly #events: SupervisorEvents;
  readonly #presence: PresenceTable;
  readonly #serverId: string;
  #accept: AcceptSource = { mode: 'transfer' };
  /** Replies to a reload's prepare step, by worker, while one is in progress. */
  #reloadReplies: ((worker: number, error: string | null) => void) | null = null;
  #reloads = 0;
  #watchdog: NodeJS.Timeout | null = null;
  #stopping = false;
  /** Every worker came up once: from then on a failed start is a failed restart, retried. */
  #started = false;
  /** Workers replaced since start (kept where every thread can read it, for metrics). */
  get restarts(): number {
    return this.#counters.server[ServerCounter.Restarts]!;
  }

  constructor(
    config: ServerConfig,
    counters: WorkerCounters,
    pool: SlabPool,
    logger: Logger,
    events: SupervisorEvents,
    presence: PresenceTable,
    serverId: string,
  ) {
    this.#config = config;
    this.#counters = counters;
    this.#pool = pool;
    this.#presence = presence;
    this.#serverId = serverId;
    this.#logger = logger;
    this.#events = events;
    this.#slots = Array.from({ length: config.workers }, (_, id) => ({
      id,
      generation: 0,
      worker: null,
      ready: false,
      hung: false,
      draining: false,
      startedAt: 0,
      restartDelay: FIRST_RESTART_DELAY,
      restartTimer: null,
      stopped: null,
    }));
  }

  /** Starts every worker; rejects if one fails before it is ready (a broken app module). */
  async start(accept: AcceptSource): Promise<void> {
    this.#accept = accept;
    await Promise.all(this.#slots.map((slot) => this.#spawn(slot)));
    this.#started = true;
    this.#watchdog = setInterval(() => this.#checkHeartbeats(), Math.max(100, Math.floor((this.#config.heartbeatTimeout * 1000) / 4)));
    this.#watchdog.unref();
  }

  isReady(worker: number): boolean {
    const slot = this.#slots[worker]!;
    return slot.ready && !slot.hung && !slot.draining;
  }

  /** Ready, and its heartbeat is on time: new sockets go only to such workers while there is one. */
  isAccepting(worker: number, now: number): boolean {
    return this.isReady(worker) && now - this.#counters.get(worker, Counter.Heartbeat) <= LATE_HEARTBEAT_MS;
  }

  /** The generation of the worker now in slot `worker`, or -1 when it has none running. */
  generationOf(worker: number): number {
    const slot = this.#slots[worker];
    return slot === undefined || slot.worker === null ? -1 : slot.generation;
  }

  /** Hands a socket to a worker; the transfer must happen before anything reads the socket. */
  send(worker: number, message: PrimaryMessage, transfer: readonly unknown[]): void {
    this.#slots[worker]!.worker!.postMessage(message, transfer as never);
  }

  /** Sends to `worker` if it runs (a message for a worker that died goes with it); false when it has none. */
  post(worker: number, message: PrimaryMessage): boolean {
    const thread = this.#slots[worker]?.worker;
    if (thread == null) return false;
    thread.postMessage(message);
    return true;
  }

  /**
   * Sends to the ready worker `preferred`, or the next ready one after it (a publish enters the
   * mesh there). Returns false when no worker is ready.
   */
  sendToAny(message: PrimaryMessage, preferred = 0): boolean {
    const n = this.#slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.#slots[(preferred + i) % n]!;
      if (slot.ready && !slot.hung && slot.worker !== null) {
        slot.worker.postMessage(message);
        return true;
      }
    }
    return false;
  }

  #spawn(slot: ShardSlot): Promise<void> {
    slot.generation++;
    slot.ready = false;
    slot.hung = false;
    slot.draining = false;
    slot.restartTimer = null;
    this.#counters.resetGauges(slot.id);
    this.#events.reset(slot.id);
    this.#pool.markAlive(slot.id, slot.generation);
    const init: WorkerInit = {
      id: slot.id,
      generation: slot.generation,
      config: this.#config,
      counters: this.#counters.buffer,
      pool: this.#pool.buffer,
      presence: this.#presence.buffer,
      serverId: this.#serverId,
      accept: this.#accept,
    };
    // resourceLimits takes whole MiB.
    const youngMb = Math.ceil(this.#config.workerYoungGenerationSize / (1024 * 1024));
    const worker = new Worker(SHARD_ENTRY, {
      workerData: init,
      name: `shardws-worker-${slot.id}`,
      ...(youngMb > 0 ? { resourceLimits: { maxYoungGenerationSizeMb: youngMb } } : {}),
    });
    slot.worker = worker;
    slot.startedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      // Every message from a worker is dispatched here, by type.
      worker.on('message', (message: WorkerMessage) => {
        switch (message.type) {
          case 'ready':
            slot.ready = true;
            this.#connectPeers(slot);
            // The first start is summed up by listen()'s one line; a replacement is news.
            this.#logger[this.#started ? 'info' : 'debug']({ worker: slot.id, generation: slot.generation }, 'worker ready');
            settled = true;
            resolve();
            return;
          case 'stopped':
            slot.stopped?.();
            return;
          case 'interest':
            this.#events.interest(slot.id, message.topics, message.subscribed);
            return;
          case 'bridge-publish':
            this.#events.bridgePublish(slot.id, message);
            return;
          case 'recover':
            this.#events.recover(slot.id, message);
            return;
          case 'cluster-direct':
          case 'cluster-tagged':
          case 'tag-interest':
          case 'cluster-count':
            this.#events.cluster?.(slot.id, message);
            return;
          case 'reload-prepared':
            if (message.generation === this.#reloads) this.#reloadReplies?.(slot.id, message.error);
            return;
        }
      });
      worker.on('error', (error) => {
        // A worker failing its first start (a broken app) makes start() reject with the error,
        // and the caller reports it once, rather than one stack per worker here.
        this.#logger[this.#started ? 'error' : 'debug']({ worker: slot.id, err: error }, 'worker threw an uncaught exception');
        if (!settled) {
          settled = true;
          reject(error);
        }
      });
      worker.on('exit', (code) => {
        this.#onExit(slot, worker, code);
        if (!settled) {
          settled = true;
          reject(new Error(`worker ${slot.id} exited with code ${code} before it was ready`));
        }
      });
    });
  }

  /** A port between the new worker and every other ready one. */
  #connectPeers(slot: ShardSlot): void {
    for (const other of this.#slots) {
      if (other === slot || !other.ready || other.worker === null) continue;
      const { port1, port2 } = new MessageChannel();
      slot.worker!.postMessage({ type: 'peer', worker: other.id, generation: other.generation, port: port1 } satisfies PrimaryMessage, [port1]);
      other.worker.postMessage({ type: 'peer', worker: slot.id, generation: slot.generation, port: port2 } satisfies PrimaryMessage, [port2]);
    }
  }

  #onExit(slot: ShardSlot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    const wasReady = slot.ready;
    slot.ready = false;
    slot.worker = null;
    slot.stopped?.();
    // Whatever the dead worker held in the pool goes back now, so nothing leaks; its
    // subscribers and tags are no longer counted.
    const released = this.#pool.markDead(slot.id);
    this.#presence.clearWorker(slot.id);
    for (const other of this.#slots) {
      if (other !== slot && other.worker !== null) other.worker.postMessage({ type: 'peer-gone', worker: slot.id } satisfies PrimaryMessage);
    }
    // Its connections and the sockets sent to it died with it: none counts until the restart.
    this.#counters.resetGauges(slot.id);
    this.#events.reset(slot.id);
    this.#events.exited(slot.id);
    this.#reloadReplies?.(slot.id, 'worker exited during the reload');
    if (this.#stopping || slot.draining) return;
    // The first start failing is reported by start(); a replacement failing is retried, later.
    if (!wasReady && !this.#started) return;
    if (wasReady) this.#counters.server[ServerCounter.Restarts]!++;
    if (wasReady && Date.now() - slot.startedAt > STABLE_RUN) slot.restartDelay = FIRST_RESTART_DELAY;
    const delay = slot.restartDelay;
    slot.restartDelay = Math.min(MAX_RESTART_DELAY, slot.restartDelay * 2);
    this.#logger.error(
      { worker: slot.id, code, poolRefsReleased: released, restartIn: delay },
      wasReady ? 'worker exited unexpectedly; restarting it' : 'replacement worker failed before it was ready; retrying',
    );
    slot.restartTimer = setTimeout(() => {
      this.#spawn(slot).catch((error: unknown) => {
        this.#logger.error({ worker: slot.id, err: error }, 'worker restart failed');
      });
    }, delay);
  }

  #checkHeartbeats(): void {
    const now = Date.now();
    for (const slot of this.#slots) {
      if (!slot.ready || slot.hung || slot.worker === null) continue;
      const beat = this.#counters.get(slot.id, Counter.Heartbeat);
      if (beat > 0 && now - beat > this.#config.heartbeatTimeout * 1000) {
        this.#logger.error({ worker: slot.id, silentFor: now - beat }, 'worker stopped answering its heartbeat; replacing it');
        slot.hung = true;
        void slot.worker.terminate();
      }
    }
  }

  /**
   * Rebuilds every worker's TLS context: from new options, or by re-reading the configured
   * files. Workers started later use the same.
   */
  reloadTls(tls: TlsOptions | null): void {
    if (tls !== null) this.#config = Object.freeze({ ...this.#config, tls });
    for (const slot of this.#slots) slot.worker?.postMessage({ type: 'tls-reload', tls } satisfies PrimaryMessage);
  }

  /**
   * Loads a new instance of the app modules in every worker, and switches all of them to it only
   * when every one has it loaded and started: a module that fails anywhere changes nothing.
   * Rejects with the first worker's reason then.
   */
  async reload(): Promise<void> {
    if (this.#reloadReplies !== null) throw new Error('reload: a reload is already in progress');
    const generation = ++this.#reloads;
    const workers = this.#slots.filter((slot) => slot.ready && slot.worker !== null);
    const waiting = new Set(workers.map((slot) => slot.id));
    let failure: string | null = null;
    await new Promise<void>((resolve) => {
      this.#reloadReplies = (worker, error) => {
        if (!waiting.delete(worker)) return;
        failure ??= error === null ? null : `worker ${worker}: ${error}`;
        if (waiting.size === 0) resolve();
      };
      if (waiting.size === 0) resolve();
      for (const slot of workers) slot.worker!.postMessage({ type: 'reload-prepare', generation } satisfies PrimaryMessage);
    });
    this.#reloadReplies = null;
    for (const slot of workers) slot.worker?.postMessage({ type: 'reload-finish', generation, commit: failure === null } satisfies PrimaryMessage);
    if (failure !== null) throw new Error(`reload failed, nothing changed: ${failure}`);
  }

  /**
   * Replaces the workers one at a time: each stops taking connections, closes its own with 1001
   * at random moments within `spread` seconds (their clients reconnect to the others), exits,
   * and its replacement is ready before the next one starts.
   */
  async restartWorkers(spread: number): Promise<void> {
    for (const slot of this.#slots) {
      if (this.#stopping) return;
      const worker = slot.worker;
      if (worker === null || !slot.ready) continue;
      slot.draining = true;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const stopped = new Promise<void>((resolve) => {
        slot.stopped = resolve;
      });
      worker.postMessage({ type: 'drain', spread, grace: this.#config.shutdownGrace } satisfies PrimaryMessage);
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, (spread + this.#config.shutdownGrace) * 1000 + 2000).unref());
      await Promise.race([stopped, deadline]);
      slot.stopped = null;
      await worker.terminate();
      await exited;
      if (this.#stopping) return;
      this.#counters.server[ServerCounter.Restarts]!++;
      this.#logger.info({ worker: slot.id }, 'worker replaced (rolling restart)');
      await this.#spawn(slot);
    }
  }

  /** Asks every worker to close its connections (1001) within `grace` seconds, then ends them. */
  async stop(grace: number): Promise<void> {
    this.#stopping = true;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    const pending: Promise<void>[] = [];
    for (const slot of this.#slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      const worker = slot.worker;
      if (worker === null) continue;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const stopped = new Promise<void>((resolve) => {
        slot.stopped = resolve;
      });
      worker.postMessage({ type: 'shutdown', grace } satisfies PrimaryMessage);
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, grace * 1000 + 2000).unref());
      pending.push(
        Promise.race([stopped, deadline]).then(async () => {
          await worker.terminate();
          await exited;
        }),
      );
    }
    await Promise.all(pending);
  }
}
