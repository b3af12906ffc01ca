/**
 * CaseSession runs one case over an open WebSocket connection (the handshake is done) and records
 * what Autobahn's fuzzer records: the events, who started the closing handshake, whether it
 * completed, the peer's close code, and who dropped TCP. The fuzzer plays either role: as a client
 * it masks and waits for the server to close TCP; as a server it does not mask and closes TCP
 * itself once the closing handshake is done (RFC 6455 §7.1.1).
 */
import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextMacrotask, setTimeout as sleep } from 'node:timers/promises';
import type { PerMessageDeflate } from '../../src/shared/permessage-deflate.ts';
import type { Behavior, CaseEvent, Delivery, EchoCase, EchoMessage, FuzzingCase, ScriptedCase, Step } from './fuzzing-case.ts';
import { NORMAL, bytes, closePayload, sameEvents } from './fuzzing-case.ts';
import { FrameReader, FrameStream, WireViolation, buildFrame, chopSizes, readClosePayload } from './wire.ts';
import type { WireFrame } from './wire.ts';

export type FuzzerRole = 'client' | 'server';

export interface Observation {
  readonly events: readonly CaseEvent[];
  readonly closedByMe: boolean;
  /** The closing handshake completed: both close frames were exchanged. */
  readonly wasClean: boolean;
  /** The fuzzer had to destroy the TCP connection itself. */
  readonly droppedByMe: boolean;
  readonly remoteCloseCode: number | null;
  readonly remoteCloseReason: string;
  /** What the peer under test did wrong on the wire, if anything (the fuzzer then failed the connection). */
  readonly violation: string | null;
  /** Echo cases: the verdict on the round trips. */
  readonly echo: { readonly behavior: Behavior; readonly result: string } | null;
  /** Milliseconds from the completed closing handshake to the peer's TCP FIN. */
  readonly tcpCloseMs: number | null;
  readonly durationMs: number;
}

export interface SessionOptions {
  readonly role: FuzzerRole;
  readonly delivery: Delivery;
  /** The negotiated permessage-deflate, in our role. */
  readonly codec: PerMessageDeflate | null;
  /** How long a server has to close TCP after the closing handshake (fuzzer as client). */
  readonly tcpCloseTimeout?: number;
  /** How long the peer has to answer our close frame. */
  readonly closeTimeout?: number;
}

interface OpenMessage {
  readonly binary: boolean;
  readonly compressed: boolean;
  readonly parts: Buffer[];
}

const EMPTY = Buffer.alloc(0);
/** No case runs longer than this, whatever the peer does. */
const CASE_LIMIT_MS = 120_000;
/**
 * The cases' kill/close timers are Autobahn's times this: they only run out for a peer that
 * never answers, so a passing run costs no more, and a loaded CI machine is not a failing peer.
 */
const TIMER_SCALE = 3;

export class CaseSession {
  readonly #socket: Socket;
  readonly #role: FuzzerRole;
  readonly #delivery: Delivery;
  readonly #codec: PerMessageDeflate | null;
  readonly #tcpCloseTimeout: number;
  readonly #closeTimeout: number;
  readonly #reader: FrameReader;
  readonly #started = performance.now();
  readonly #timers = new Set<NodeJS.Timeout>();

  readonly #events: CaseEvent[] = [];
  #consumed = 0;
  #onEvent: (() => void) | null = null;
  #eventWaiter: (() => void) | null = null;

  #closeSent = false;
  #closeReceived = false;
  #closedByMe = false;
  #wasClean = false;
  #droppedByMe = false;
  #remoteClose: { code: number | null; reason: string } | null = null;
  #violation: string | null = null;
  #echo: { behavior: Behavior; result: string } | null = null;
  #handshakeDoneAt: number | null = null;
  #peerEndedAt: number | null = null;
  #closed = false;
  readonly #done: Promise<void>;
  #resolveDone!: () => void;

  #message: OpenMessage | null = null;
  readonly #queue: WireFrame[] = [];
  #draining = false;
  #batch: Buffer[] = [];

  constructor(socket: Socket, options: SessionOptions) {
    this.#socket = socket;
    this.#role = options.role;
    this.#delivery = options.delivery;
    this.#codec = options.codec;
    this.#tcpCloseTimeout = options.tcpCloseTimeout ?? 2000;
    this.#closeTimeout = options.closeTimeout ?? 2000;
    this.#reader = new FrameReader(options.role === 'server');
    this.#done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  /** Runs `kase`; `head` holds bytes that arrived with the handshake. Resolves once TCP is closed. */
  async run(kase: FuzzingCase, head: Buffer): Promise<Observation> {
    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onPeerEnd());
    socket.on('close', () => this.#onSocketClose());
    socket.on('error', () => {}); // resets after a failed case are expected; 'close' follows
    socket.resume(); // the handshake reader paused it
    if (socket.destroyed) this.#onSocketClose();
    this.#after(Math.max(CASE_LIMIT_MS, kase.kind === 'echo' ? kase.timeoutMs + 10_000 : 0), () => this.#drop());
    if (head.length > 0) this.#onData(head);
    if (kase.kind === 'scripted') await this.#runScript(kase);
    else await this.#runEcho(kase);
    await this.#done;
    return {
      events: this.#events,
      closedByMe: this.#closedByMe,
      wasClean: this.#wasClean,
      droppedByMe: this.#droppedByMe,
      remoteCloseCode: this.#remoteClose?.code ?? null,
      remoteCloseReason: this.#remoteClose?.reason ?? '',
      violation: this.#violation,
      echo: this.#echo,
      tcpCloseMs: this.#handshakeDoneAt !== null && this.#peerEndedAt !== null ? Math.max(0, this.#peerEndedAt - this.#handshakeDoneAt) : null,
      durationMs: performance.now() - this.#started,
    };
  }

  /** No close frame sent or received, TCP up: Autobahn's STATE_OPEN. */
  get #open(): boolean {
    return !this.#closeSent && !this.#closeReceived && this.#peerEndedAt === null && !this.#closed;
  }

  get #masked(): boolean {
    return this.#role === 'client';
  }

  // ---- scripted cases -----------------------------------------------------------------------

  async #runScript(kase: ScriptedCase): Promise<void> {
    const outcomes = Object.values(kase.outcomes);
    // Autobahn's finishWhenDone: once the events match every expected outcome, close normally.
    if (kase.close.closedByMe && kase.suppressClose !== true) {
      this.#onEvent = () => {
        if (outcomes.every((events) => sameEvents(this.#events, events))) this.#sendClose(closePayload(NORMAL));
      };
    }
    let stream: FrameStream | null = null;
    for (const step of kase.steps) {
      if (step.do === 'wait') {
        this.#flushBatch();
        await sleep(step.ms);
        if (step.marker !== undefined) {
          if (!this.#open) return; // Autobahn's continueLater parts run only while open
          this.#events.push({ kind: 'timeout', marker: step.marker });
        }
        continue;
      }
      if (step.do === 'frame-head') {
        stream = new FrameStream(step.opcode, step.length, this.#masked);
        await this.#emit(stream.header);
        continue;
      }
      if (step.do === 'frame-data') {
        if (stream === null) throw new Error('frame-data without frame-head');
        await this.#emit(stream.part(bytes(step.data)));
        continue;
      }
      await this.#runStep(step);
    }
    this.#flushBatch();
    const end = kase.end;
    if ('kill' in end) this.#after(end.kill * TIMER_SCALE, () => this.#drop());
    else this.#after(end.close * TIMER_SCALE, () => this.#sendClose(closePayload(NORMAL)));
  }

  async #runStep(step: Exclude<Step, { do: 'wait' | 'frame-head' | 'frame-data' }>): Promise<void> {
    switch (step.do) {
      case 'frame': {
        const masked = this.#masked !== (step.wrongMask === true);
        await this.#emit(buildFrame(step.opcode, bytes(step.payload ?? EMPTY), step.fin ?? true, step.rsv ?? 0, masked), step.chop);
        return;
      }
      case 'close':
        // As Autobahn's sendCloseFrame: ignored once a closing handshake started (7.1.2 sends its
        // second close as a raw frame).
        if (this.#startClosing()) await this.#emit(buildFrame(8, step.payload, true, 0, this.#masked));
        return;
    }
  }

  /** Writes bytes the way the delivery mode says; nothing once TCP is going away. */
  async #emit(data: Buffer, chop?: number): Promise<void> {
    if (this.#delivery === 'batched') {
      this.#batch.push(data);
      return;
    }
    if (this.#delivery === 'frames' && chop === undefined) {
      this.#write(data);
      return;
    }
    const sizes = this.#delivery === 'chopped' ? chopSizes(data.length) : fixedSizes(data.length, chop!);
    let at = 0;
    for (const size of sizes) {
      if (!this.#writable) return;
      this.#write(data.subarray(at, at + size));
      at += size;
      await nextMacrotask();
    }
  }

  #flushBatch(): void {
    if (this.#batch.length === 0) return;
    const batch = Buffer.concat(this.#batch);
    this.#batch = [];
    this.#write(batch);
  }

  get #writable(): boolean {
    return !this.#closed && this.#socket.writable;
  }

  #write(data: Buffer): void {
    if (this.#writable && data.length > 0) this.#socket.write(data);
  }

  // ---- echo cases ---------------------------------------------------------------------------

  async #runEcho(kase: EchoCase): Promise<void> {
    if (kase.deflate !== undefined && this.#codec === null) {
      this.#echo = { behavior: 'UNIMPLEMENTED', result: 'permessage-deflate was not negotiated' };
      this.#sendClose(closePayload(NORMAL));
      return;
    }
    let timedOut = false;
    this.#after(kase.timeoutMs, () => {
      timedOut = true;
      this.#sendClose(closePayload(NORMAL));
    });
    let count = 0;
    const stopped = (): { behavior: Behavior; result: string } => ({
      behavior: 'FAILED',
      result: timedOut ? `did not finish within ${kase.timeoutMs} ms (${count} echoes)` : `connection closed after ${count} echoes`,
    });
    for (const message of kase.messages()) {
      if (!this.#open) {
        this.#echo = stopped();
        return;
      }
      const frames = await this.#messageFrames(message, kase.fragmentSize, kase.deflate !== undefined);
      this.#write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
      const event = await this.#nextEvent();
      if (event === null) {
        this.#echo = stopped();
        return;
      }
      const problem = echoProblem(message, event);
      if (problem !== null) {
        this.#echo = { behavior: 'FAILED', result: `echo ${count + 1}: ${problem}` };
        this.#sendClose(closePayload(NORMAL));
        return;
      }
      count++;
    }
    this.#echo = { behavior: 'OK', result: `received all ${count} echoes` };
    this.#sendClose(closePayload(NORMAL));
  }

  /** The next event not yet taken, or null once the connection is closed. */
  async #nextEvent(): Promise<CaseEvent | null> {
    while (this.#consumed === this.#events.length) {
      if (this.#closed || this.#closeReceived) return null;
      await new Promise<void>((resolve) => (this.#eventWaiter = resolve));
    }
    return this.#events[this.#consumed++]!;
  }

  /**
   * A message as frames of `fragmentSize` payload bytes (one frame without it); compressed first
   * when asked, with RSV1 on the first frame (RFC 7692 §6.1).
   */
  async #messageFrames(message: EchoMessage, fragmentSize: number | undefined, compress: boolean): Promise<Buffer[]> {
    const codec = this.#codec;
    const data =
      compress && codec !== null
        ? await new Promise<Buffer>((resolve, reject) => codec.compress(message.data, (error, out) => (error ? reject(error) : resolve(out!))))
        : message.data;
    const compressed = compress && codec !== null;
    const opcode = message.binary ? 2 : 1;
    const size = fragmentSize === undefined || fragmentSize <= 0 ? Math.max(data.length, 1) : fragmentSize;
    const frames: Buffer[] = [];
    let at = 0;
    do {
      const end = Math.min(at + size, data.length);
      frames.push(buildFrame(at === 0 ? opcode : 0, data.subarray(at, end), end === data.length, at === 0 && compressed ? 4 : 0, this.#masked));
      at = end;
    } while (at < data.length);
    return frames;
  }

  // ---- receiving ----------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    if (this.#violation !== null) return;
    let frames: WireFrame[];
    try {
      frames = this.#reader.push(chunk);
    } catch (error) {
      this.#fail(error as WireViolation);
      return;
    }
    for (const frame of frames) this.#queue.push(frame);
    void this.#drain();
  }

  /** Handles frames one at a time, waiting for each inflation, so events keep their order. */
  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    while (this.#queue.length > 0 && this.#violation === null) {
      const pending = this.#onFrame(this.#queue.shift()!);
      if (pending !== undefined) await pending;
    }
    this.#draining = false;
    if (this.#peerEndedAt !== null) this.#finishPeerEnd();
  }

  #onFrame(frame: WireFrame): Promise<void> | undefined {
    // RFC 6455 §5.5.1: after its close frame an endpoint sends nothing more.
    if (this.#closeReceived) return this.#fail(new WireViolation(`frame (opcode ${frame.opcode}) after the close frame`));
    const { opcode } = frame;
    if (opcode >= 8) {
      if (frame.rsv !== 0) return this.#fail(new WireViolation('RSV bits set on a control frame'));
      if (opcode === 8) return this.#onCloseFrame(frame.payload);
      if (opcode === 9) {
        this.#record({ kind: 'ping', data: frame.payload });
        if (this.#open) this.#write(buildFrame(10, frame.payload, true, 0, this.#masked));
      } else {
        this.#record({ kind: 'pong', data: frame.payload });
      }
      return undefined;
    }
    if (opcode === 0) {
      if (this.#message === null) return this.#fail(new WireViolation('continuation frame without a message'));
      if (frame.rsv !== 0) return this.#fail(new WireViolation('RSV bits set on a continuation frame'));
    } else {
      if (this.#message !== null) return this.#fail(new WireViolation('new message inside a fragmented message'));
      if ((frame.rsv & 3) !== 0) return this.#fail(new WireViolation('RSV2 or RSV3 set'));
      const compressed = (frame.rsv & 4) !== 0;
      if (compressed && this.#codec === null) return this.#fail(new WireViolation('RSV1 set without permessage-deflate'));
      this.#message = { binary: opcode === 2, compressed, parts: [] };
    }
    const message = this.#message!;
    message.parts.push(frame.payload);
    if (!frame.fin) return undefined;
    this.#message = null;
    const data = message.parts.length === 1 ? message.parts[0]! : Buffer.concat(message.parts);
    if (!message.compressed) return this.#deliver(message.binary, data);
    const codec = this.#codec!;
    return new Promise<void>((resolve) => {
      codec.decompress(data, true, (error, out) => {
        if (error) this.#fail(new WireViolation(`invalid compressed message: ${error.message}`, 1007));
        else this.#deliver(message.binary, out ?? EMPTY);
        resolve();
      });
    });
  }

  #deliver(binary: boolean, data: Buffer): undefined {
    if (!binary && !isUtf8(data)) return this.#fail(new WireViolation('text message is not UTF-8', 1007));
    this.#record({ kind: 'message', data, binary });
    return undefined;
  }

  #record(event: CaseEvent): void {
    this.#events.push(event);
    this.#onEvent?.();
    this.#wakeWaiter();
  }

  #onCloseFrame(payload: Buffer): undefined {
    let info: { code: number | null; reason: string };
    try {
      info = readClosePayload(payload);
    } catch (error) {
      return this.#fail(error as WireViolation);
    }
    this.#closeReceived = true;
    this.#remoteClose = info;
    if (!this.#closeSent) {
      // The peer started the closing handshake: answer with its code (RFC 6455 §5.5.1).
      this.#closeSent = true;
      this.#write(buildFrame(8, info.code === null ? EMPTY : closePayload(info.code), true, 0, this.#masked));
    }
    this.#wasClean = true;
    this.#handshakeDoneAt = performance.now();
    this.#wakeWaiter();
    if (this.#role === 'server') {
      this.#endTcp();
    } else {
      // RFC 6455 §7.1.1: the server closes TCP first; a client waits, then drops it.
      this.#after(this.#tcpCloseTimeout, () => this.#drop());
    }
    return undefined;
  }

  // ---- closing ------------------------------------------------------------------------------

  /** Marks the start of our closing handshake; false when it already started (either side). */
  #startClosing(): boolean {
    if (this.#closeSent || this.#closeReceived || this.#closed) return false;
    this.#closeSent = true;
    this.#closedByMe = true;
    this.#after(this.#closeTimeout, () => {
      if (!this.#closeReceived) this.#drop();
    });
    return true;
  }

  #sendClose(payload: Buffer): void {
    if (this.#startClosing()) this.#write(buildFrame(8, payload, true, 0, this.#masked));
  }

  /** The peer under test broke the protocol: fail the connection (RFC 6455 §7.1.7). */
  #fail(violation: WireViolation): undefined {
    if (this.#violation === null) this.#violation = violation.message;
    this.#queue.length = 0;
    if (this.#startClosing()) this.#write(buildFrame(8, closePayload(violation.closeCode), true, 0, this.#masked));
    this.#drop();
    return undefined;
  }

  #onPeerEnd(): void {
    this.#peerEndedAt = performance.now();
    this.#wakeWaiter();
    if (!this.#draining) this.#finishPeerEnd();
  }

  /** The peer closed its side: close ours, after every frame before its FIN was handled. */
  #finishPeerEnd(): void {
    if (!this.#socket.destroyed && this.#socket.writable) this.#socket.end();
  }

  /** Our side closes TCP (the server's job after the closing handshake); drop it if the peer lingers. */
  #endTcp(): void {
    if (!this.#socket.destroyed && this.#socket.writable) this.#socket.end();
    this.#after(this.#tcpCloseTimeout, () => this.#drop());
  }

  #drop(): void {
    if (this.#closed || this.#socket.destroyed) return;
    this.#droppedByMe = true;
    this.#socket.destroy();
  }

  #onSocketClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#peerEndedAt ??= performance.now();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#wakeWaiter();
    this.#resolveDone();
  }

  #wakeWaiter(): void {
    const waiter = this.#eventWaiter;
    this.#eventWaiter = null;
    waiter?.();
  }

  #after(ms: number, action: () => void): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      action();
    }, ms);
    this.#timers.add(timer);
  }
}

function* fixedSizes(total: number, size: number): Generator<number> {
  for (let sent = 0; sent < total; sent += size) yield Math.min(size, total - sent);
}

function echoProblem(sent: EchoMessage, got: CaseEvent): string | null {
  if (got.kind !== 'message') return `expected a message, got a ${got.kind}`;
  if (got.binary !== sent.binary) return `expected a ${sent.binary ? 'binary' : 'text'} message, got ${got.binary ? 'binary' : 'text'}`;
  if (got.data.length !== sent.data.length) return `expected ${sent.data.length} bytes, got ${got.data.length}`;
  if (!got.data.equals(sent.data)) return 'payload differs from what was sent';
  return null;
}
