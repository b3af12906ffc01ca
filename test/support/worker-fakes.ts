/**
 * Stand-ins for the worker-side unit tests (test/worker): a silent logger, a connection that
 * records the prepared frames a TopicRegistry hands it, a mesh that records what it is asked to
 * announce and publish, a topic registry as a PeerMesh sees it, an in-memory socket that records
 * what is written to it, and a bounded wait.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { App, CountOptions, MessageData, Priority, SendOptions, SendStatus, Shard } from '../../src/shared/app.ts';
import type { ServerConfig } from '../../src/shared/config.ts';
import type { WindowBits } from '../../src/shared/permessage-deflate.ts';
import type { PreparedMessage } from '../../src/shared/prepared-message.ts';
import { ByteArena } from '../../src/shared/frame-writer.ts';
import { FlushScheduler } from '../../src/runtime/frame-flush.ts';
import type { ConnectionContext } from '../../src/worker/connection.ts';
import type { HttpEndpoints } from '../../src/worker/http-endpoints.ts';
import { RouteTable } from '../../src/worker/route-table.ts';
import { closeSlowClients } from '../../src/worker/send-admission.ts';
import type { PeerPublish } from '../../src/shared/thread-messages.ts';
import { PresenceTable } from '../../src/shared/presence-table.ts';
import { ConnectionDirectory } from '../../src/worker/connection-directory.ts';
import type { DirectPeers } from '../../src/worker/connection-directory.ts';
import { WorkerPresence } from '../../src/worker/worker-presence.ts';
import { WorkerCounters } from '../../src/shared/worker-counters.ts';
import { UpgradeHandler } from '../../src/worker/upgrade.ts';
import { ProxyGateway } from '../../src/worker/proxy-gateway.ts';
import { kSendPrepared, kSerial, readingLimits } from '../../src/worker/connection.ts';
import type { Connection } from '../../src/worker/connection.ts';
import type { MeshTopics, PeerMesh } from '../../src/worker/peer-mesh.ts';

export const silentLogger = (): Logger => pino({ level: 'silent' });

/** One call of `[kSendPrepared]`. */
export interface PreparedSend {
  readonly message: PreparedMessage;
  readonly plain: Buffer;
  /** The frame compressed at the connection's window, when the message is to be compressed. */
  readonly compressed: Buffer | null;
  readonly priority: Priority;
  readonly release: (() => void) | null;
}

let serials = 0;

/**
 * A connection as the TopicRegistry sees it: records every prepared send (compressed at
 * `window`, as a connection that negotiated it asks), and (when `releaseAtOnce`) runs the
 * release it was given before returning, as a connection that wrote the frames straight away
 * (or dropped them) would.
 */
export class FakeConnection {
  readonly sends: PreparedSend[] = [];
  /** What went through `send` (a recovery's replay). */
  readonly direct: { readonly data: Buffer; readonly binary: boolean }[] = [];
  releaseAtOnce = false;
  readonly window: WindowBits;
  readonly [kSerial] = serials++;

  constructor(window: WindowBits = 15) {
    this.window = window;
  }

  send(data: MessageData, options?: SendOptions): SendStatus {
    this.direct.push({ data: Buffer.from(data as Uint8Array), binary: options?.binary ?? typeof data !== 'string' });
    return 'written';
  }

  [kSendPrepared](message: PreparedMessage, priority: Priority, release: (() => void) | null): SendStatus {
    const compressed = message.compressible ? message.compressedAt(this.window) : null;
    this.sends.push({ message, plain: message.plain, compressed, priority, release });
    if (this.releaseAtOnce) release?.();
    return 'written';
  }

  /** Typed as what the registry takes. */
  get asConnection(): Connection {
    return this as unknown as Connection;
  }
}

/** What a FakeMesh was asked to do. */
export type MeshCall =
  | { readonly kind: 'announce'; readonly topics: readonly string[]; readonly subscribed: boolean; readonly only: number | undefined }
  | {
      readonly kind: 'publish';
      readonly workers: readonly number[];
      readonly topic: string;
      readonly plain: Buffer;
      readonly compressed: Buffer | null;
      readonly priority: Priority;
    };

/** The PeerMesh surface a TopicRegistry uses, recording each call. */
export class FakeMesh {
  readonly calls: MeshCall[] = [];
  attached: MeshTopics | null = null;

  attach(topics: MeshTopics): void {
    this.attached = topics;
  }

  announce(topics: readonly string[], subscribed: boolean, only?: number): void {
    this.calls.push({ kind: 'announce', topics: [...topics], subscribed, only });
  }

  publish(workers: ReadonlySet<number>, topic: string, plain: Buffer, compressed: Buffer | null, priority: Priority): void {
    this.calls.push({ kind: 'publish', workers: [...workers], topic, plain, compressed, priority });
  }

  get asMesh(): PeerMesh {
    return this as unknown as PeerMesh;
  }

  ofKind<K extends MeshCall['kind']>(kind: K): Extract<MeshCall, { kind: K }>[] {
    return this.calls.filter((call): call is Extract<MeshCall, { kind: K }> => call.kind === kind);
  }
}

/** One `deliver` a RecordingTopics received; `frames` is copied at delivery (pooled pages get reused). */
export interface Delivery {
  readonly message: PeerPublish;
  readonly frames: Buffer;
  readonly release: (() => void) | null;
}

/** The topic registry as a PeerMesh sees it, recording what the mesh tells it. */
export class RecordingTopics implements MeshTopics {
  localTopics: string[] = [];
  readonly interest: { readonly worker: number; readonly topics: readonly string[]; readonly subscribed: boolean }[] = [];
  readonly deliveries: Delivery[] = [];
  readonly forgotten: number[] = [];

  setRemoteInterest(worker: number, topics: readonly string[], subscribed: boolean): void {
    this.interest.push({ worker, topics: [...topics], subscribed });
  }

  deliver(message: PeerPublish, frames: Buffer, release: (() => void) | null): void {
    this.deliveries.push({ message, frames: Buffer.from(frames), release });
  }

  forgetWorker(worker: number): void {
    this.forgotten.push(worker);
  }
}

/** What a TopicMembership stand-in records (Connection contexts that need a `topics`). */
export class RecordingMembership {
  readonly calls: string[] = [];
  subscribe(_connection: Connection, topic: string): number {
    this.calls.push(`subscribe ${topic}`);
    return 1;
  }
  unsubscribe(_connection: Connection, topic: string): number {
    this.calls.push(`unsubscribe ${topic}`);
    return 0;
  }
  publish(topic: string, _data: MessageData, _options: SendOptions | undefined, _except: Connection | null): undefined {
    this.calls.push(`publish ${topic}`);
  }
}

/** A Shard's `publish` that does nothing (typed as the overloaded original). */
export const noPublish = (() => undefined) as unknown as Shard['publish'];

/** A worker's connection directory alone: worker 0 of a one-worker server, no peers. */
export function testDirectory(workers = 1, table: PresenceTable = PresenceTable.create(64, workers)): ConnectionDirectory<Connection> {
  const peers: DirectPeers = { generationOf: () => -1, post: () => false, workers: [] };
  return new ConnectionDirectory<Connection>('test', 0, 1, peers, new WorkerPresence(table, 0, silentLogger()));
}

/** A Shard whose members do nothing, with `overrides`. */
export function testShard(overrides: Partial<Shard> = {}): Shard {
  return {
    id: 0,
    count: 1,
    logger: silentLogger(),
    publish: noPublish,
    subscriberCount: ((_topic: string, options?: CountOptions) => (options?.scope === 'cluster' ? Promise.resolve(0) : 0)) as Shard['subscriberCount'],
    send: () => 'gone',
    close: () => 'gone',
    sendTo: () => {},
    closeAll: () => {},
    connections: () => [],
    connectionCount: ((options?: CountOptions) => (options?.scope === 'cluster' ? Promise.resolve(0) : 0)) as Shard['connectionCount'],
    stats: () => [],
    ...overrides,
  };
}

/** HTTP endpoints for the intake tests: each request recorded as `METHOD url`, answered 200 "from the endpoints". */
export function recordingEndpoints(): { readonly endpoints: HttpEndpoints; readonly requests: string[] } {
  const requests: string[] = [];
  const endpoints = {
    handle(req: IncomingMessage, res: ServerResponse) {
      requests.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('from the endpoints');
    },
  } as unknown as HttpEndpoints;
  return { endpoints, requests };
}

/**
 * An in-memory socket: records every byte written to it (`text`, Latin-1 as the handshake
 * writes), never produces data of its own, and counts as ended once `end()` ran.
 */
export class RecordingSocket extends Duplex {
  readonly chunks: Buffer[] = [];
  ended = false;

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.ended = true;
    callback();
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

/** Polls `predicate` on every turn of the event loop until it holds; rejects after `timeout` ms naming `what`. */
export async function until(predicate: () => boolean, what: string, timeout = 2000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * The ConnectionContext a worker builds (shard-runtime.ts), for tests that make connections:
 * fresh arena and scheduler, recording topics, closed connections leave `connections`.
 */
export function testContext(config: ServerConfig, shard: Shard, logger: Logger, counters: Float64Array, connections: Set<Connection> = new Set()): ConnectionContext {
  return {
    app: {},
    shard,
    logger,
    arena: new ByteArena(),
    scheduler: new FlushScheduler(),
    counters,
    maxPayloadLength: config.maxPayloadLength,
    reading: readingLimits(config),
    autoPong: config.autoPong,
    limits: { highWaterMark: config.highWaterMark, maxBackpressure: config.maxBackpressure },
    lowWaterMark: config.lowWaterMark,
    slowClient: closeSlowClients,
    close: { closeTimeoutMs: 1000, logger },
    topics: new RecordingMembership(),
    directory: testDirectory(),
    idle: { tick: 0 },
    backlogged: new Set(),
    closed: (connection) => connections.delete(connection),
  };
}

/** A route table of one app that takes every path, with the server's settings. */
export function singleRoute(config: ServerConfig, app: App<unknown>, context: ConnectionContext): RouteTable {
  return RouteTable.build([{ pattern: null, app, settings: config, proxy: null }], context, silentLogger());
}

/**
 * What a worker gives an intake (socket-intake.ts, http2-intake.ts) for one app on every path:
 * one worker's counters, endpoints that record each request, the open connections, and the
 * UpgradeHandler in front of the app.
 */
export function intakeParts(config: ServerConfig, app: App<unknown>) {
  const logger = silentLogger();
  const counters = new WorkerCounters(1);
  const slot = counters.slot(0);
  const shard = testShard({ id: 0, count: 1, logger });
  const { endpoints, requests } = recordingEndpoints();
  const connections = new Set<Connection>();
  const context = testContext(config, shard, logger, slot, connections);
  const upgrade = new UpgradeHandler(singleRoute(config, app, context), new ProxyGateway(logger), shard, logger, slot);
  return { logger, counters, slot, endpoints, requests, connections, upgrade };
}
