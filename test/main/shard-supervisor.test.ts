/**
 * ShardSupervisor with real worker threads (src/worker/shard.ts) running fixture apps. Sockets
 * reach the workers as in listen(): accepted here and transferred to the worker the test picks.
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { ShardSupervisor } from '../../src/main/shard-supervisor.ts';
import type { SupervisorEvents } from '../../src/main/shard-supervisor.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import type { ServerOptions } from '../../src/shared/config.ts';
import { PresenceTable } from '../../src/shared/presence-table.ts';
import { SlabPool } from '../../src/shared/slab-pool.ts';
import type { PrimaryMessage } from '../../src/shared/thread-messages.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';

const fixtureApp = (name: string): string => fileURLToPath(new URL(`../fixtures/apps/${name}.ts`, import.meta.url));

type Event =
  | { kind: 'reset' | 'exited'; worker: number }
  | { kind: 'interest'; worker: number; topics: readonly string[]; subscribed: boolean }
  | { kind: 'bridgePublish'; topic: string; data: Uint8Array; binary: boolean };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A supervisor over `workers` workers of a fixture app, recording its events; stopped after the test. */
function supervise(app: string, workers: number, options: ServerOptions = {}, bridged: false | 'plain' = 'plain', on: Partial<SupervisorEvents> = {}) {
  // What the supervisor logs at error level, one object a line.
  const errors: { msg: string }[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(JSON.parse(line) as { msg: string }) });
  const config = resolveConfig({ app: fixtureApp(app), workers, logLevel: 'silent', shutdownGrace: 1, ...options }, workers, bridged);
  const counters = new WorkerCounters(workers);
  const pool = SlabPool.create({ pageSize: 16 * 1024, pageCount: 16, maxWorkers: workers });
  const presence = PresenceTable.create(64, workers);
  const events: Event[] = [];
  const supervisor = new ShardSupervisor(config, counters, pool, logger, {
    reset: (worker) => {
      events.push({ kind: 'reset', worker });
      on.reset?.(worker);
    },
    exited: (worker) => {
      events.push({ kind: 'exited', worker });
      on.exited?.(worker);
    },
    interest: (worker, topics, subscribed) => {
      events.push({ kind: 'interest', worker, topics: [...topics], subscribed });
      on.interest?.(worker, topics, subscribed);
    },
    bridgePublish: (worker, message) => {
      events.push({ kind: 'bridgePublish', topic: message.topic, data: message.data, binary: message.binary });
      on.bridgePublish?.(worker, message);
    },
    recover: (worker, message) => on.recover?.(worker, message),
  }, presence, 'test');
  cleanups.push(() => supervisor.stop(0));
  return { supervisor, counters, presence, events, errors, of: (kind: Event['kind']) => events.filter((e) => e.kind === kind) };
}

/**
 * A listener that hands each accepted socket to the worker `target()` names, as listen() does.
 * Returns a way to open a `ws` client on it.
 */
async function transferTo(supervisor: ShardSupervisor, target: () => number): Promise<(path?: string) => Client> {
  const server: Server = createServer((socket) => supervisor.send(target(), { type: 'socket', socket }, [socket]));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return (path = '/') => {
    const client = new Client(`ws://127.0.0.1:${port}${path}`);
    cleanups.push(() => client.ws.terminate());
    return client;
  };
}

/** A `ws` client that keeps what it receives. */
class Client {
  readonly ws: WebSocket;
  readonly received: string[] = [];
  closeCode: number | null = null;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => this.received.push(String(data)));
    this.ws.on('close', (code) => {
      this.closeCode = code;
    });
    this.ws.on('error', () => {});
  }

  /** The worker that greeted this client with `{"hello": id}`. */
  async greetedBy(): Promise<number> {
    await vi.waitFor(() => expect(this.received.length).toBeGreaterThan(0), { timeout: 10_000 });
    return (JSON.parse(this.received[0]!) as { hello: number }).hello;
  }

  async receives(message: string): Promise<void> {
    await vi.waitFor(() => expect(this.received).toContain(message), { timeout: 10_000 });
  }
}

const publish = (topic: string, text: string, fromBridge: boolean): PrimaryMessage => ({
  type: 'publish',
  topic,
  data: new Uint8Array(Buffer.from(text)),
  binary: false,
  fromBridge,
});

describe('ShardSupervisor', () => {
  it('refuses to start when a worker fails before it is ready (a broken app module)', async () => {
    const { supervisor, of, errors } = supervise('no-such-app', 1);
    await expect(supervisor.start({ mode: 'transfer' })).rejects.toMatchObject({ name: 'AppLoadError', code: 'SHARDWS_APP_LOAD' });
    expect(supervisor.isReady(0)).toBe(false);
    expect(supervisor.sendToAny(publish('t', 'x', false))).toBe(false);
    // The worker's 'error' comes before its 'exit'; once it has exited, nothing restarts it: a
    // failed first start is start()'s to report.
    await vi.waitFor(() => expect(of('exited')).toEqual([{ kind: 'exited', worker: 0 }]), { timeout: 10_000 });
    expect(supervisor.restarts).toBe(0);
    expect(supervisor.isReady(0)).toBe(false);
    // Not logged as an error at all: start() rejects with it, and its caller reports it once (the
    // CLI as one line); no retry is scheduled (that would be logged).
    expect(errors).toEqual([]);
  });

  it('starts its workers, restarts one that exits, counts it, and falls through to a ready worker meanwhile', async () => {
    let duringRestart: { ready: boolean[]; sent: boolean } | null = null;
    const { supervisor, counters, events, errors, of } = supervise('shard-echo', 2, {}, 'plain', {
      exited: (worker) => {
        // While worker 1 is gone, a publish meant for it enters through worker 0.
        if (worker === 1 && duringRestart === null) {
          duringRestart = { ready: [supervisor.isReady(0), supervisor.isReady(1)], sent: supervisor.sendToAny(publish('t', 'while 1 is gone', false), 1) };
        }
      },
    });
    expect(supervisor.isReady(0)).toBe(false);
    expect(supervisor.sendToAny(publish('t', 'x', false))).toBe(false);

    await supervisor.start({ mode: 'transfer' });
    expect([supervisor.isReady(0), supervisor.isReady(1)]).toEqual([true, true]);
    // Each worker runs on the shared counters: its heartbeat is there.
    expect(counters.get(0, Counter.Heartbeat)).toBeGreaterThan(0);
    expect(counters.get(1, Counter.Heartbeat)).toBeGreaterThan(0);
    expect(of('reset').map((e) => (e.kind === 'reset' ? e.worker : -1)).sort()).toEqual([0, 1]);
    expect(supervisor.restarts).toBe(0);

    let target = 1;
    const connect = await transferTo(supervisor, () => target);
    const doomed = connect();
    expect(await doomed.greetedBy()).toBe(1);
    doomed.ws.send('exit');

    await vi.waitFor(() => expect(duringRestart).not.toBeNull(), { timeout: 10_000 });
    expect(duringRestart).toEqual({ ready: [true, false], sent: true });
    // Worker 0 got it: bridged, it passes the publish on to the other servers.
    await vi.waitFor(() => expect(of('bridgePublish')).toHaveLength(1), { timeout: 10_000 });
    expect(of('bridgePublish')[0]).toMatchObject({ topic: 't', binary: false });
    expect(Buffer.from((of('bridgePublish')[0] as { data: Uint8Array }).data).toString()).toBe('while 1 is gone');
    expect(counters.get(0, Counter.PublishesOut)).toBe(1);

    // Replaced, and counted.
    await vi.waitFor(() => expect(supervisor.isReady(1)).toBe(true), { timeout: 10_000 });
    expect(supervisor.restarts).toBe(1);
    expect(errors.map((e) => e.msg)).toEqual(['worker exited unexpectedly; restarting it']);
    expect(supervisor.isReady(0)).toBe(true);
    expect(of('exited')).toEqual([{ kind: 'exited', worker: 1 }]);
    // Slot 1 started afresh twice more: when its worker exited and when the replacement spawned.
    expect(events.filter((e) => e.kind === 'reset' && e.worker === 1)).toHaveLength(3);
    expect(events.filter((e) => e.kind === 'reset' && e.worker === 0)).toHaveLength(1);
    await vi.waitFor(() => expect(doomed.closeCode).not.toBeNull(), { timeout: 10_000 });

    // The replacement serves.
    const next = connect();
    expect(await next.greetedBy()).toBe(1);
    next.ws.send('still there?');
    await next.receives('still there?');
    target = 0;
    const other = connect();
    expect(await other.greetedBy()).toBe(0);
  });

  it('reports a worker’s topic interest and its publishes, wires the workers together, and stops', async () => {
    const { supervisor, counters, events, of } = supervise('pubsub', 2, {}, 'plain');
    await supervisor.start({ mode: 'transfer' });
    let target = 0;
    const connect = await transferTo(supervisor, () => target);

    const a = connect();
    expect(await a.greetedBy()).toBe(0);
    await vi.waitFor(() => expect(of('interest')).toEqual([{ kind: 'interest', worker: 0, topics: ['room'], subscribed: true }]), { timeout: 10_000 });
    target = 1;
    const b = connect();
    expect(await b.greetedBy()).toBe(1);
    await vi.waitFor(() => expect(of('interest')).toHaveLength(2), { timeout: 10_000 });
    expect(of('interest')[1]).toEqual({ kind: 'interest', worker: 1, topics: ['room'], subscribed: true });

    // B's publish crosses to A on worker 0 (the peer port the supervisor set up), and to the bridge.
    b.ws.send('from b');
    await a.receives('from b');
    await vi.waitFor(() => expect(of('bridgePublish')).toHaveLength(1), { timeout: 10_000 });
    const bridged = of('bridgePublish')[0] as Extract<Event, { kind: 'bridgePublish' }>;
    expect(bridged.topic).toBe('room');
    expect(bridged.binary).toBe(false);
    expect(Buffer.from(bridged.data).toString()).toBe('from b');

    // A publish from the bridge enters through one worker and reaches every subscriber, but is
    // not sent back to the bridge.
    expect(supervisor.sendToAny(publish('room', 'from elsewhere', true), 1)).toBe(true);
    await a.receives('from elsewhere');
    await b.receives('from elsewhere');
    // It entered through the worker asked for (the one publishing counts it), not the first one.
    expect(counters.get(1, Counter.PublishesOut)).toBe(2);
    expect(counters.get(0, Counter.PublishesOut)).toBe(0);
    expect(supervisor.sendToAny(publish('room', 'through 0', true), 0)).toBe(true);
    await b.receives('through 0');
    expect(counters.get(0, Counter.PublishesOut)).toBe(1);
    expect(counters.get(1, Counter.PublishesOut)).toBe(2);

    // A's worker has no subscriber left.
    a.ws.send('unsub');
    await a.receives('unsubscribed');
    await vi.waitFor(() => expect(of('interest')).toHaveLength(3), { timeout: 10_000 });
    expect(of('interest')[2]).toEqual({ kind: 'interest', worker: 0, topics: ['room'], subscribed: false });

    await supervisor.stop(1);
    // Messages a worker sent before it stopped have all been dispatched by now.
    expect(of('bridgePublish')).toHaveLength(1);
    expect(events.filter((e) => e.kind === 'exited').map((e) => (e as { worker: number }).worker).sort()).toEqual([0, 1]);
    expect([supervisor.isReady(0), supervisor.isReady(1)]).toEqual([false, false]);
    expect(supervisor.sendToAny(publish('room', 'too late', false))).toBe(false);
    // Stopped workers are not restarts.
    expect(supervisor.restarts).toBe(0);
    await vi.waitFor(() => expect([a.closeCode, b.closeCode]).toEqual([1001, 1001]), { timeout: 10_000 });
  });
});
