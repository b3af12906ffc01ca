/**
 * runLoad: one load-generator run. The main thread splits the connections over piscina client
 * threads (one long task each), moves every thread through the phases together (connect →
 * warm-up → measure → stop), reads the server's /proc figures at the phase edges, and merges
 * the threads' histograms and counters into one BenchResult.
 */
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Piscina } from 'piscina';
import { applyHeapGrowth } from '../../src/main/heap-growth.ts';
import { DEFAULT_HEAP_GROWING_PERCENT } from '../../src/shared/config.ts';
import { nowMicros } from './clock.ts';
import { LatencyHistogram } from './histogram.ts';
import type { LatencySummary } from './histogram.ts';
import type { BenchMode, BenchOptions } from './options.ts';
import { cpuMicros, openFileLimit, residentKiB } from './proc-stats.ts';
import { Live, Phase, RunState } from './shared-state.ts';
import type { ThreadResult, ThreadTask } from './thread-task.ts';

export interface BenchResult {
  readonly mode: BenchMode;
  readonly url: string;
  readonly threads: number;
  readonly settings: {
    readonly connections: number;
    readonly inFlight: number;
    readonly size: number;
    readonly kind: string;
    readonly deflate: boolean;
    readonly fastMask: boolean;
    readonly rawEcho: boolean;
    readonly http2: boolean;
    readonly warmup: number;
    readonly duration: number;
  };
  readonly connections: {
    readonly opened: number;
    readonly failed: number;
    /** Connections with permessage-deflate negotiated. */
    readonly deflated: number;
    /** Still open when the run ended (connect mode: after the hold). */
    readonly held: number;
  };
  /** Seconds actually measured. */
  readonly measuredSeconds: number;
  /** Messages received and verified while measuring (broadcast: deliveries to subscribers). */
  readonly messages: number;
  readonly messagesPerSecond: number;
  /** Payload megabytes (10^6 bytes) received per second, before compression. */
  readonly megabytesPerSecond: number;
  /** Broadcast: messages published per second. */
  readonly publishesPerSecond: number | null;
  /** Echo round trip or broadcast delivery latency, milliseconds. */
  readonly latency: LatencySummary;
  /** Connect mode: opening handshakes completed per second, and their latency. */
  readonly handshakesPerSecond: number | null;
  readonly handshakeLatency: LatencySummary;
  readonly errors: number;
  readonly lost: number;
  readonly stalls: number;
  readonly errorSamples: readonly (readonly [string, number])[];
  /** CPU the generator process used (all threads), as % of one core. */
  readonly generatorCpuPercent: number;
  /** The generator used ≥ 90 % of what its threads can: the figures may be its limit, not the server's. */
  readonly generatorBound: boolean;
  /** Stopped early (Ctrl-C): the figures cover what ran until then. */
  readonly interrupted: boolean;
  /** Same for the server, when --server-pid was given. */
  readonly serverCpuPercent: number | null;
  readonly serverRssBeforeKiB: number | null;
  readonly serverRssAfterKiB: number | null;
  readonly serverRssPerConnectionKiB: number | null;
  readonly notes: readonly string[];
}

export interface RunHooks {
  /** Called about once a second with a one-line status. */
  readonly progress?: (line: string) => void;
  /** Aborting stops the run where it is and returns what was measured so far. */
  readonly signal?: AbortSignal;
}

/** Share of the client threads' CPU at which the generator, not the server, sets the pace. */
const GENERATOR_BOUND = 0.9;

/**
 * The warning for a run the generator itself limited: its CPU (% of one core) at least 90 % of
 * what its threads can use (one core each, no more than the machine has); null otherwise.
 */
export function generatorBoundNote(cpuPercent: number, threads: number, cores: number): string | null {
  const capacity = Math.min(threads, cores) * 100;
  if (cpuPercent < GENERATOR_BOUND * capacity) return null;
  return (
    `the generator used ${cpuPercent}% CPU, ${Math.round((cpuPercent / capacity) * 100)}% of what its ${threads} thread(s) can: ` +
    'it was probably the bottleneck, and the server may be faster than these figures (more --threads, or the generator on another machine)'
  );
}

const TASK_FILE = new URL(`./thread-task${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Splits n into `parts` near-equal whole shares. */
function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

/** CPU time of this process since `since`, as % of one core over `wallMicros`. */
function cpuPercent(since: NodeJS.CpuUsage, wallMicros: number): number {
  const used = process.cpuUsage(since);
  return wallMicros > 0 ? Math.round(((used.user + used.system) / wallMicros) * 1000) / 10 : 0;
}

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

export async function runLoad(options: BenchOptions, hooks: RunHooks = {}): Promise<BenchResult> {
  const notes: string[] = [];
  const threads = Math.max(1, Math.min(options.threads, options.connections));
  const shares = split(options.connections, threads);
  const pids = options.serverPids;

  const fileLimit = openFileLimit();
  const needed = options.connections + (options.mode === 'broadcast' ? 1 : 0) + 64;
  if (fileLimit !== null && needed > fileLimit) {
    notes.push(`open-file limit is ${fileLimit}: ${options.connections} connections may not all open (raise ulimit -n)`);
  }

  const state = RunState.create(threads);
  // The generator's threads compress and allocate like a server's workers: the same fixed heap
  // growing factor keeps them out of V8's over-and-over marking (docs/performance.md, "W3's GC mode").
  applyHeapGrowth(DEFAULT_HEAP_GROWING_PERCENT);
  const pool = new Piscina<ThreadTask, ThreadResult>({
    filename: TASK_FILE.href,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: 1,
    idleTimeout: 60_000,
    // Tasks last the whole run; a thread parked in Atomics.wait could not close its sockets.
    atomics: 'disabled',
  });

  const rssBefore = pids.length > 0 ? residentKiB(pids) : null;
  const startCpu = process.cpuUsage();
  const startWall = nowMicros();
  const startServerCpu = pids.length > 0 ? cpuMicros(pids) : null;

  let firstId = 0;
  const runs = shares.map((connections, thread) => {
    const task: ThreadTask = {
      thread,
      threads,
      state: state.buffer,
      options,
      connections,
      firstId,
      publisher: options.mode === 'broadcast' && thread === 0,
    };
    firstId += connections + 1;
    return pool.run(task);
  });
  let failure: unknown = null;
  const all = Promise.all(runs).catch((error: unknown) => {
    failure = error;
    state.setPhase(Phase.Stop);
    return null;
  });
  const signal = hooks.signal;
  const interrupted = new Promise<void>((resolve) => {
    if (signal?.aborted) resolve();
    else signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  const stopping = (): boolean => failure !== null || signal?.aborted === true;
  /** Every attempt so far failed and as many failed as could run at once: more would fail alike. */
  const noneConnects = (): boolean => state.total(Live.Opened) === 0 && state.total(Live.Failed) >= Math.min(options.connections, options.concurrency);

  const progress = (label: string, since: number, lastReceived: { value: number; at: number }): void => {
    if (hooks.progress === undefined) return;
    const now = nowMicros();
    const received = state.total(Live.Received);
    const rate = now > lastReceived.at ? ((received - lastReceived.value) * 1e6) / (now - lastReceived.at) : 0;
    lastReceived.value = received;
    lastReceived.at = now;
    const open = state.total(Live.Open);
    hooks.progress(
      `${label} ${((now - since) / 1e6).toFixed(0)}s  open ${open}  failed ${state.total(Live.Failed)}  ` +
        (options.mode === 'connect' ? '' : `${Math.round(rate).toLocaleString('en-US')} msg/s  `) +
        `errors ${state.total(Live.Errors)}`,
    );
  };

  // Connect: wait until every thread has opened (or failed) its share, or nothing connects.
  const last = { value: 0, at: nowMicros() };
  while (state.ready < threads && !stopping()) {
    await Promise.race([sleep(50), all, interrupted]);
    if (noneConnects()) break;
    if (Math.floor((nowMicros() - last.at) / 1e6) >= 1) progress('connecting', startWall, last);
  }
  if (stopping() || noneConnects()) state.setPhase(Phase.Stop);

  let generatorCpu = 0;
  let serverCpu: number | null = null;
  let measuredSeconds = 0;
  let rssAfter: number | null = null;
  let held = 0;

  const timed = async (seconds: number, label: string): Promise<void> => {
    const since = nowMicros();
    const until = since + seconds * 1e6;
    const tick = { value: state.total(Live.Received), at: since };
    while (!stopping()) {
      const left = until - nowMicros();
      if (left <= 0) break;
      await Promise.race([sleep(Math.min(1000, left / 1000)), all, interrupted]);
      progress(label, since, tick);
    }
  };

  let measuring = false;
  if (failure === null && state.total(Live.Opened) === 0) {
    notes.push('no connection could be opened: nothing to measure');
  } else if (failure === null && !stopping()) {
    if (options.mode === 'connect') {
      const wall = nowMicros() - startWall;
      generatorCpu = cpuPercent(startCpu, wall);
      const serverNow = pids.length > 0 ? cpuMicros(pids) : null;
      if (serverNow !== null && startServerCpu !== null) serverCpu = round(((serverNow - startServerCpu) / wall) * 100);
      await timed(options.duration, 'holding');
      held = state.total(Live.Open);
      rssAfter = pids.length > 0 ? residentKiB(pids) : null;
    } else {
      state.setPhase(Phase.WarmUp);
      await timed(options.warmup, 'warm-up');
      measuring = !stopping();
      const cpu0 = process.cpuUsage();
      const server0 = pids.length > 0 ? cpuMicros(pids) : null;
      const t0 = nowMicros();
      if (measuring) state.setPhase(Phase.Measure);
      if (measuring) await timed(options.duration, 'measuring');
      const wall = measuring ? nowMicros() - t0 : 0;
      measuredSeconds = wall / 1e6;
      generatorCpu = cpuPercent(cpu0, wall);
      const server1 = pids.length > 0 ? cpuMicros(pids) : null;
      if (server0 !== null && server1 !== null) serverCpu = round(((server1 - server0) / wall) * 100);
      held = state.total(Live.Open);
    }
  }
  state.setPhase(Phase.Stop);
  const results = await all;
  await pool.destroy();
  if (failure !== null || results === null) throw failure instanceof Error ? failure : new Error(String(failure));

  const latency = new LatencyHistogram();
  const handshake = new LatencyHistogram();
  let received = 0;
  let bytes = 0;
  let sent = 0;
  let errors = 0;
  let lost = 0;
  let opened = 0;
  let failed = 0;
  let deflated = 0;
  let stalls = 0;
  let connectStart = Infinity;
  let connectEnd = 0;
  const samples = new Map<string, number>();
  for (const r of results) {
    latency.merge(r.latency);
    handshake.merge(r.handshake);
    received += r.received;
    bytes += r.bytes;
    sent += r.sent;
    errors += r.errors;
    lost += r.lost;
    opened += r.opened;
    failed += r.failed;
    deflated += r.deflated;
    stalls += r.stalls;
    connectStart = Math.min(connectStart, r.connectStart);
    connectEnd = Math.max(connectEnd, r.connectEnd);
    for (const [text, count] of r.errorSamples) samples.set(text, (samples.get(text) ?? 0) + count);
  }
  if (options.deflate && deflated < opened) notes.push(`permessage-deflate was negotiated on ${deflated} of ${opened} connections`);
  if (stalls > 0) notes.push(`the publisher gave up on ${stalls} window(s) that made no progress for 1 s`);
  const wasInterrupted = signal?.aborted === true;
  if (wasInterrupted) {
    const of = options.mode === 'connect' ? `${options.duration} s held` : `${options.duration} s`;
    notes.unshift(
      measuredSeconds > 0 || options.mode === 'connect'
        ? `interrupted: partial results (${round(measuredSeconds, 1)} s measured of ${of})`
        : 'interrupted before the measurement began: nothing measured',
    );
  }
  const boundNote = generatorBoundNote(generatorCpu, threads, availableParallelism());
  if (boundNote !== null) notes.push(boundNote);

  const perSecond = (n: number): number => (measuredSeconds > 0 ? n / measuredSeconds : 0);
  const connectSeconds = connectEnd > connectStart ? (connectEnd - connectStart) / 1e6 : 0;
  const connections = options.connections + (options.mode === 'broadcast' ? 1 : 0);
  return {
    mode: options.mode,
    url: options.url,
    threads,
    settings: {
      connections: options.connections,
      inFlight: options.inFlight,
      size: options.size,
      kind: options.kind,
      deflate: options.deflate,
      fastMask: options.fastMask,
      rawEcho: options.rawEcho,
      http2: options.http2,
      warmup: options.warmup,
      duration: options.duration,
    },
    connections: { opened, failed, deflated, held },
    measuredSeconds: round(measuredSeconds, 3),
    messages: received,
    messagesPerSecond: Math.round(perSecond(received)),
    megabytesPerSecond: round(perSecond(bytes) / 1e6, 2),
    publishesPerSecond: options.mode === 'broadcast' ? Math.round(perSecond(sent)) : null,
    latency: latency.summary(),
    handshakesPerSecond: options.mode === 'connect' && connectSeconds > 0 ? Math.round(opened / connectSeconds) : null,
    handshakeLatency: handshake.summary(),
    errors,
    lost,
    stalls,
    errorSamples: [...samples].sort((a, b) => b[1] - a[1]),
    generatorCpuPercent: generatorCpu,
    generatorBound: boundNote !== null,
    interrupted: wasInterrupted,
    serverCpuPercent: serverCpu,
    serverRssBeforeKiB: rssBefore,
    serverRssAfterKiB: rssAfter,
    serverRssPerConnectionKiB:
      rssBefore !== null && rssAfter !== null && held > 0 ? round((rssAfter - rssBefore) / Math.min(held, connections), 2) : null,
    notes,
  };
}
