/**
 * The closing of one server connection (RFC 6455 §7): our close frame and the peer's, the
 * order they take against data still being sent, the peer's FIN, the timer that ends a peer
 * who never finishes, and the code the connection ends with. A connection creates its
 * CloseHandshake when closing begins (most held connections never need one).
 */
import type { Logger } from 'pino';
import { ReadyState } from '../shared/app.ts';
import { CloseCode, encodeClosePayload, fitCloseReason } from '../shared/close.ts';
import { abortTransport } from '../runtime/frame-transport.ts';
import type { FrameTransport } from '../runtime/frame-transport.ts';

const EMPTY = Buffer.alloc(0);

/**
 * What the handshake drives on its connection, as one table of functions for every connection
 * of a worker (the connection passes itself), so the connection's internals stay private.
 */
export interface CloseOps<C> {
  socket(connection: C): FrameTransport;
  /** Work that must finish before our side ends: a message inflating, or one compressing for us. */
  busy(connection: C): boolean;
  /** Messages still wait to be written (queued, or compressing): our close frame goes after them. */
  backlogged(connection: C): boolean;
  /** Drops the messages waiting to be sent: the peer stops reading once it closes. */
  dropQueued(connection: C): void;
  /** Sends a close frame ahead of any queued data. */
  sendCloseFrame(connection: C, payload: Buffer): void;
  stopReading(connection: C): void;
  /** Writes what this turn gathered now. */
  flush(connection: C): void;
}

/** How the connection ended, for the app's close handler and the close-code counters. */
export interface CloseOutcome {
  /** The peer's close code (1005: none in its frame), or 1006 when it sent no close frame. */
  readonly code: number;
  readonly reason: string;
  /** The code exchanged: the peer's, else the one we sent, else 1006. */
  readonly exchanged: number;
}

export interface CloseSettings {
  readonly closeTimeoutMs: number;
  readonly logger: Logger;
}

export class CloseHandshake<C> {
  readonly #ops: CloseOps<C>;
  readonly #connection: C;
  readonly #settings: CloseSettings;
  #state: ReadyState = ReadyState.Open;
  /** Our close frame, held until the data queued ahead of it is written. */
  #held: Buffer | null = null;
  #sent = false;
  /** The code of the close frame we sent (1005: none in it). */
  #sentCode = 0;
  #peerClose: { readonly code: number; readonly reason: string } | null = null;
  /** The peer's FIN came while work was in progress: end our side once it is done. */
  #peerEndPending = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(ops: CloseOps<C>, connection: C, settings: CloseSettings) {
    this.#ops = ops;
    this.#connection = connection;
    this.#settings = settings;
  }

  get state(): ReadyState {
    return this.#state;
  }

  /** Our close frame is out: no data frame may follow it (RFC 6455 §5.5.1). */
  get closeSent(): boolean {
    return this.#sent;
  }

  /** Starts the closing handshake from our side (RFC 6455 §7.1.2); queued data goes out first. */
  start(code: number, reason: string): void {
    if (this.#state !== ReadyState.Open) return;
    const payload = encodeClosePayload(code, reason);
    this.#state = ReadyState.Closing;
    this.#startTimer();
    if (this.#ops.backlogged(this.#connection)) this.#held = payload;
    else this.#send(payload);
  }

  /** The peer's close frame arrived. */
  peerClosed(code: number, reason: string): void {
    this.#peerClose = { code, reason };
    if (this.#state === ReadyState.Open) {
      // RFC 6455 §5.5.1: reply with a close frame echoing the status; data not yet sent is
      // dropped, the peer has stopped reading it. A message being compressed is the current
      // message, which the reply may wait for: it follows that message out (sendHeld).
      this.#state = ReadyState.Closing;
      this.#ops.dropQueued(this.#connection);
      const payload = code === CloseCode.NoStatus ? EMPTY : encodeClosePayload(code);
      if (this.#ops.backlogged(this.#connection)) this.#held = payload;
      else this.#send(payload);
    } else if (this.#held !== null) {
      // Our close waited behind queued data, which the peer no longer reads: send it now
      // (after a message being compressed, if one is).
      this.#ops.dropQueued(this.#connection);
      if (!this.#ops.backlogged(this.#connection)) this.#send(this.#held);
    }
    // RFC 6455 §7.1.1: once both close frames are exchanged, the server closes TCP first (a
    // held reply does this when it is sent).
    if (this.#sent) this.#endAfterFlush();
    else this.#startTimer();
  }

  /** Fails the connection (RFC 6455 §7.1.7): a close frame with the code, then TCP closes. */
  fail(code: number, reason: string): void {
    this.#ops.stopReading(this.#connection);
    if (this.#state === ReadyState.Open) this.#state = ReadyState.Closing;
    this.#ops.dropQueued(this.#connection);
    this.#send(encodeClosePayload(code, fitCloseReason(reason)));
    this.#endAfterFlush();
  }

  /** Destroys the socket at once, without a close handshake. */
  terminate(): void {
    if (this.#state === ReadyState.Open) this.#state = ReadyState.Closing;
    abortTransport(this.#ops.socket(this.#connection));
  }

  /**
   * Sends our held close frame, if any: the connection calls this once nothing waits ahead of
   * it. Returns whether it did.
   */
  sendHeld(): boolean {
    const held = this.#held;
    if (held === null) return false;
    this.#send(held);
    return true;
  }

  /**
   * The peer closed its side (TCP FIN), with or without a close frame: ours ends once what it
   * sent before is processed (a message may be inflating, with more frames behind it) and a
   * reply being compressed is out.
   */
  peerEnded(): void {
    if (this.#ops.busy(this.#connection)) {
      this.#peerEndPending = true;
      return;
    }
    // Our reply to its close waits for a message being compressed; sending it ends our side.
    if (this.#peerClose !== null && !this.#sent) return;
    // Frames gathered this turn (an echo, a close reply) are written before the FIN.
    if (!this.#ops.socket(this.#connection).destroyed) this.#endAfterFlush();
  }

  /** Work in progress (an inflation, a compression) finished: a pending FIN may now be answered. */
  caughtUp(): void {
    if (!this.#peerEndPending || this.#ops.busy(this.#connection)) return;
    this.#peerEndPending = false;
    this.peerEnded();
  }

  /** The socket is closed: the connection is over. */
  socketClosed(): CloseOutcome {
    this.#state = ReadyState.Closed;
    this.#held = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const peer = this.#peerClose;
    if (peer !== null) return { code: peer.code, reason: peer.reason, exchanged: peer.code };
    return { code: CloseCode.Abnormal, reason: '', exchanged: this.#sent ? this.#sentCode : CloseCode.Abnormal };
  }

  #send(payload: Buffer): void {
    if (this.#sent) return;
    this.#sent = true;
    this.#held = null;
    this.#sentCode = payload.length >= 2 ? payload.readUInt16BE(0) : CloseCode.NoStatus;
    this.#ops.sendCloseFrame(this.#connection, payload);
    if (this.#peerClose !== null) this.#endAfterFlush();
  }

  #endAfterFlush(): void {
    this.#startTimer();
    // end() queues the FIN behind whatever is written, so our flush goes first.
    setImmediate(() => {
      this.#ops.flush(this.#connection);
      const socket = this.#ops.socket(this.#connection);
      if (!socket.destroyed) socket.end();
    });
  }

  #startTimer(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#settings.logger.debug('close handshake timed out; destroying socket');
      abortTransport(this.#ops.socket(this.#connection));
    }, this.#settings.closeTimeoutMs);
    this.#timer.unref();
  }
}
