/**
 * One client thread's share of a run, as a piscina task: open this thread's connections, count
 * itself ready, drive traffic through the phases the main thread sets (RunState), then close
 * everything and return this thread's histograms and counters for merging.
 */
import { arrival, nowMicros } from './clock.ts';
import { BenchConnection, threadMaskKeys } from './bench-connection.ts';
import type { ConnectionListener, ConnectionOptions } from './bench-connection.ts';
import { openSocket, parseTarget } from './client-handshake.ts';
import type { HandshakeOptions } from './client-handshake.ts';
import { LatencyHistogram } from './histogram.ts';
import type { HistogramData } from './histogram.ts';
import { MessageTemplate, VERDICT_TEXT, Verdict } from './message-template.ts';
import type { BenchOptions } from './options.ts';
import { FixedMaskKey, PreparedFrame } from './prepared-frame.ts';
import { Live, Phase, RunState } from './shared-state.ts';

export interface ThreadTask {
  readonly thread: number;
  readonly threads: number;
  readonly state: SharedArrayBuffer;
  readonly options: BenchOptions;
  /** Echo/connect connections or broadcast subscribers this thread opens. */
  readonly connections: number;
  /** Id of this thread's first connection (ids are unique over the run). */
  readonly firstId: number;
  /** Whether this thread also runs the broadcast publisher. */
  readonly publisher: boolean;
}

export interface ThreadResult {
  readonly latency: HistogramData;
  readonly handshake: HistogramData;
  /** Messages received and verified while measuring (broadcast: deliveries). */
  readonly received: number;
  readonly bytes: number;
  /** Messages sent while measuring (broadcast: publishes). */
  readonly sent: number;
  readonly errors: number;
  /** Broadcast messages a subscriber never got (gaps in its sequence) while measuring. */
  readonly lost: number;
  readonly opened: number;
  readonly failed: number;
  /** Connections with permessage-deflate negotiated. */
  readonly deflated: number;
  /** Connect mode: first connect started, last handshake finished (monotonic µs). */
  readonly connectStart: number;
  readonly connectEnd: number;
  /** Publisher windows given up after a second without progress (broadcast). */
  readonly stalls: number;
  /** Distinct error descriptions with their counts (the first few kinds). */
  readonly errorSamples: readonly (readonly [string, number])[];
}

const MAX_SAMPLE_KINDS = 8;

/** This thread's tallies; the live row in RunState mirrors the ones the progress line shows. */
class Tally {
  readonly latency = new LatencyHistogram();
  readonly handshake = new LatencyHistogram();
  received = 0;
  bytes = 0;
  sent = 0;
  errors = 0;
  lost = 0;
  opened = 0;
  failed = 0;
  deflated = 0;
  stalls = 0;
  connectStart = Infinity;
  connectEnd = 0;
  readonly samples = new Map<string, number>();
  readonly #live: Float64Array;
  readonly #row: number;

  constructor(state: RunState, thread: number) {
    this.#live = state.counters;
    this.#row = RunState.slot(thread, 0);
  }

  live(column: number, delta: number): void {
    this.#live[this.#row + column]! += delta;
  }

  error(description: string): void {
    this.errors++;
    this.live(Live.Errors, 1);
    const seen = this.samples.get(description);
    if (seen !== undefined) this.samples.set(description, seen + 1);
    else if (this.samples.size < MAX_SAMPLE_KINDS) this.samples.set(description, 1);
  }

  /** One verified message: on the live rate always, in the results only while measuring. */
  delivered(bytes: number, latency: number, measuring: boolean): void {
    this.live(Live.Received, 1);
    if (!measuring) return;
    this.received++;
    this.bytes += bytes;
    this.latency.record(latency);
  }

  result(): ThreadResult {
    return {
      latency: this.latency.toData(),
      handshake: this.handshake.toData(),
      received: this.received,
      bytes: this.bytes,
      sent: this.sent,
      errors: this.errors,
      lost: this.lost,
      opened: this.opened,
      failed: this.failed,
      deflated: this.deflated,
      connectStart: this.connectStart,
      connectEnd: this.connectEnd,
      stalls: this.stalls,
      errorSamples: [...this.samples],
    };
  }
}

/** What a mode does with its connections. */
interface Driver extends ConnectionListener {
  add(connection: BenchConnection, role: 'publisher' | 'subscriber'): void;
  /** Warm-up begins: start sending. */
  start(): void;
}

/** Whether traffic should flow. */
const running = (phase: Phase): boolean => phase === Phase.WarmUp || phase === Phase.Measure;

/**
 * Sends the template with a fresh sequence number and time: through FrameWriter with a fresh
 * mask key by default, or by patching the connection's pre-masked frame (--fast-mask).
 */
class MessageSender {
  readonly #template: MessageTemplate;
  readonly #scratch: Buffer;
  readonly #slots: number;

  constructor(template: MessageTemplate, slots: number) {
    this.#template = template;
    this.#scratch = template.scratch();
    this.#slots = slots;
  }

  /** With --fast-mask and no compression, gives the connection its pre-masked frames. */
  prepare(connection: BenchConnection, mask: FixedMaskKey): void {
    if (connection.compression !== null) return; // compressed payloads differ every time
    const frames: PreparedFrame[] = [];
    for (let i = 0; i < this.#slots; i++) frames.push(new PreparedFrame(this.#template, mask));
    connection.frames = frames;
  }

  /** Sends the next message; `micros` is its send time when the caller has just read the clock. */
  send(connection: BenchConnection, micros = nowMicros()): void {
    const seq = connection.sent++;
    this.#template.stamp(this.#scratch, seq, micros);
    const frames = connection.frames;
    if (frames === null) {
      connection.send(this.#scratch, this.#template.binary);
      return;
    }
    const frame = frames[seq % frames.length]!;
    frame.patch(this.#scratch);
    connection.sendFrame(frame.bytes);
  }
}

class EchoDriver implements Driver {
  readonly #connections: BenchConnection[] = [];
  readonly #template: MessageTemplate;
  readonly #sender: MessageSender;
  readonly #tally: Tally;
  readonly #phase: () => Phase;
  readonly #inFlight: number;

  constructor(template: MessageTemplate, sender: MessageSender, tally: Tally, phase: () => Phase, inFlight: number) {
    this.#template = template;
    this.#sender = sender;
    this.#tally = tally;
    this.#phase = phase;
    this.#inFlight = inFlight;
  }

  add(connection: BenchConnection): void {
    this.#connections.push(connection);
  }

  start(): void {
    for (const connection of this.#connections) {
      for (let i = 0; i < this.#inFlight; i++) this.#sender.send(connection);
    }
  }

  message(connection: BenchConnection, data: Buffer, isBinary: boolean): void {
    const template = this.#template;
    const phase = this.#phase();
    const verdict = template.check(data, isBinary);
    if (verdict !== Verdict.Ok) {
      this.#tally.error(`echo: ${VERDICT_TEXT[verdict]}`);
    } else if (template.seq !== connection.expected) {
      // The server echoes in order on each connection (RFC 6455 has no reordering).
      this.#tally.error('echo: sequence out of order');
      connection.expected = template.seq + 1;
    } else {
      connection.expected++;
      this.#tally.delivered(data.length, arrival.micros - template.micros, phase === Phase.Measure);
    }
    // Keep the connection's window full, wrong echo or not: the reply goes out with this read's flush.
    if (running(phase)) {
      if (phase === Phase.Measure) this.#tally.sent++;
      this.#sender.send(connection, arrival.micros);
    }
  }

  closed(_connection: BenchConnection, problem: string | null): void {
    this.#tally.live(Live.Open, -1);
    if (problem !== null && this.#phase() !== Phase.Stop) this.#tally.error(problem);
  }
}

class BroadcastDriver implements Driver {
  readonly #template: MessageTemplate;
  readonly #sender: MessageSender;
  readonly #tally: Tally;
  readonly #phase: () => Phase;
  readonly #window: number;
  #publisher: BenchConnection | null = null;
  /** The subscriber whose deliveries pace the publisher. */
  #probe: BenchConnection | null = null;
  /** Sequence numbers below this reached the probe (or were given up on). */
  #acked = 0;
  #lastProgress = 0;
  #stallTimer: NodeJS.Timeout | null = null;
  /** Subscribers that have seen their first message (the start of their sequence). */
  readonly #started = new WeakSet<BenchConnection>();

  constructor(template: MessageTemplate, sender: MessageSender, tally: Tally, phase: () => Phase, window: number) {
    this.#template = template;
    this.#sender = sender;
    this.#tally = tally;
    this.#phase = phase;
    this.#window = window;
  }

  add(connection: BenchConnection, role: 'publisher' | 'subscriber'): void {
    if (role === 'publisher') this.#publisher = connection;
    else this.#probe ??= connection;
  }

  start(): void {
    if (this.#publisher === null) return;
    this.#lastProgress = nowMicros();
    this.#stallTimer = setInterval(() => this.#checkStall(), 100);
    this.#pump();
  }

  #pump(): void {
    const publisher = this.#publisher!;
    const phase = this.#phase();
    if (!running(phase)) {
      if (this.#stallTimer !== null) clearInterval(this.#stallTimer);
      return;
    }
    while (publisher.open && publisher.sent - this.#acked < this.#window) {
      if (phase === Phase.Measure) this.#tally.sent++;
      this.#sender.send(publisher);
    }
  }

  /** A window that has not moved for a second is given up on (the probe lost messages). */
  #checkStall(): void {
    if (!running(this.#phase())) {
      clearInterval(this.#stallTimer!);
      return;
    }
    const publisher = this.#publisher!;
    if (publisher.sent > this.#acked && nowMicros() - this.#lastProgress > 1_000_000) {
      this.#tally.stalls++;
      this.#acked = publisher.sent;
      this.#lastProgress = nowMicros();
      this.#pump();
    }
  }

  message(connection: BenchConnection, data: Buffer, isBinary: boolean): void {
    if (connection === this.#publisher) return; // a server that also sends to the sender: not a delivery
    const template = this.#template;
    const phase = this.#phase();
    const verdict = template.check(data, isBinary);
    if (verdict !== Verdict.Ok) {
      this.#tally.error(`broadcast: ${VERDICT_TEXT[verdict]}`);
      return;
    }
    const seq = template.seq;
    if (!this.#started.has(connection)) {
      // Subscriptions may take effect a moment after the handshake (across workers): a
      // subscriber's sequence starts at the first message it gets, in the warm-up.
      this.#started.add(connection);
    } else if (seq < connection.expected) {
      this.#tally.error('broadcast: duplicate or out-of-order message');
      return;
    } else if (seq > connection.expected && phase === Phase.Measure) {
      this.#tally.lost += seq - connection.expected;
    }
    connection.expected = seq + 1;
    this.#tally.delivered(data.length, arrival.micros - template.micros, phase === Phase.Measure);
    if (connection === this.#probe && this.#publisher !== null) {
      if (seq + 1 > this.#acked) this.#acked = seq + 1;
      this.#lastProgress = nowMicros();
      this.#pump();
    }
  }

  closed(_connection: BenchConnection, problem: string | null): void {
    this.#tally.live(Live.Open, -1);
    if (problem !== null && this.#phase() !== Phase.Stop) this.#tally.error(problem);
  }
}

class ConnectDriver implements Driver {
  readonly #tally: Tally;
  readonly #phase: () => Phase;

  constructor(tally: Tally, phase: () => Phase) {
    this.#tally = tally;
    this.#phase = phase;
  }

  add(): void {}
  start(): void {}
  message(): void {}

  closed(_connection: BenchConnection, problem: string | null): void {
    this.#tally.live(Live.Open, -1);
    if (problem !== null && this.#phase() !== Phase.Stop) this.#tally.error(problem);
  }
}

/** Runs `open(i)` for i < count with at most `limit` in progress, until `stopped()`. */
async function withConcurrency(count: number, limit: number, stopped: () => boolean, open: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count && !stopped()) await open(next++);
  };
  await Promise.all(Array.from({ length: Math.min(count, limit) }, lane));
}

export default async function runThread(task: ThreadTask): Promise<ThreadResult> {
  const options = task.options;
  const state = new RunState(task.state, task.threads);
  const tally = new Tally(state, task.thread);
  let phase: Phase = state.phase;
  const currentPhase = (): Phase => phase;
  const phaseWatch = (async () => {
    while (phase < Phase.Stop) {
      await state.reached((phase + 1) as Phase);
      phase = state.phase;
    }
  })();

  const target = parseTarget(options.url);
  const publishTarget = options.publishUrl === null ? target : parseTarget(options.publishUrl);
  const handshakeOptions: HandshakeOptions = {
    deflate: options.deflate,
    rawEcho: options.rawEcho,
    timeout: options.handshakeTimeout,
    insecure: options.insecure,
    http2: options.http2,
    headers: options.headers,
    maxMessageSize: Math.max(16 * 1024 * 1024, options.size * 2),
  };
  const template = options.mode === 'connect' ? null : new MessageTemplate(options.kind, options.size);
  const sender = template === null ? null : new MessageSender(template, options.inFlight);
  const driver: Driver =
    options.mode === 'echo' ? new EchoDriver(template!, sender!, tally, currentPhase, options.inFlight)
    : options.mode === 'broadcast' ? new BroadcastDriver(template!, sender!, tally, currentPhase, options.inFlight)
    : new ConnectDriver(tally, currentPhase);

  const connections: BenchConnection[] = [];
  const open = async (id: number, role: 'publisher' | 'subscriber'): Promise<void> => {
    const started = nowMicros();
    if (started < tally.connectStart) tally.connectStart = started;
    let opened;
    try {
      opened = await openSocket(role === 'publisher' ? publishTarget : target, handshakeOptions);
    } catch (error) {
      tally.failed++;
      tally.live(Live.Failed, 1);
      tally.error((error as Error).message);
      return;
    }
    const finished = nowMicros();
    tally.handshake.record(finished - started);
    if (finished > tally.connectEnd) tally.connectEnd = finished;
    tally.opened++;
    tally.live(Live.Opened, 1);
    tally.live(Live.Open, 1);
    if (opened.compression !== null) tally.deflated++;
    const mask = options.fastMask ? new FixedMaskKey() : null;
    const connectionOptions: ConnectionOptions = {
      readerRole: options.rawEcho ? 'server' : 'client',
      maxMessageSize: handshakeOptions.maxMessageSize,
      maskKeys: mask ?? threadMaskKeys,
    };
    const connection = new BenchConnection(id, opened, driver, connectionOptions);
    if (mask !== null) sender?.prepare(connection, mask);
    connections.push(connection);
    driver.add(connection, role);
  };

  const perThreadLimit = Math.max(1, Math.ceil(options.concurrency / task.threads));
  // The publisher connects last, once its thread's subscribers are in.
  // The main thread stops the run early when nothing connects (fail fast) or on Ctrl-C.
  const stopped = (): boolean => state.phase === Phase.Stop;
  await withConcurrency(task.connections, perThreadLimit, stopped, (i) => open(task.firstId + i, 'subscriber'));
  if (task.publisher && !stopped()) await open(task.firstId + task.connections, 'publisher');
  state.markReady();

  await state.reached(Phase.WarmUp);
  if (phase < Phase.WarmUp) phase = state.phase;
  if (phase < Phase.Stop) driver.start();

  await state.reached(Phase.Stop);
  phase = Phase.Stop;
  await Promise.all(connections.map((connection) => connection.close()));
  await phaseWatch;
  return tally.result();
}
