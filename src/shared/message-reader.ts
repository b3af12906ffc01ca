import { parseClosePayload } from './close.ts';
import { ProtocolError, isProtocolError } from './errors.ts';
import type { FrameHandler, Role } from './frame-parser.ts';
import { FrameParser } from './frame-parser.ts';
import { Opcode } from './opcodes.ts';
import { Utf8Validator, isValidUtf8 } from './utf8.ts';

/** The inflating half of a negotiated permessage-deflate (see permessage-deflate.ts). */
export interface MessageInflater {
  /** Whether every callback runs before decompress() returns (inflating on the calling thread). */
  readonly synchronous: boolean;
  /**
   * Inflates one frame of a compressed message; `fin` marks its last frame. The callback
   * (synchronous or not) gets the bytes this frame inflated to, or a ProtocolError (1009 when
   * the message passes the limit, 1007 for corrupt data).
   */
  decompress(data: Buffer, fin: boolean, callback: (error: ProtocolError | null, data?: Buffer) => void): void;
}

/**
 * What a MessageReader reports, as one table of functions shared by every reader of a kind
 * (server connections, clients, load-generator connections): the reader passes its target, so
 * no connection carries closures of its own and the callbacks stay off the objects users see.
 */
export interface MessageEvents<T> {
  message(target: T, data: Buffer, isBinary: boolean): void;
  ping(target: T, payload: Buffer): void;
  pong(target: T, payload: Buffer): void;
  /** The peer's close frame: code 1005 when it carried no status (RFC 6455 §7.1.5). */
  close(target: T, code: number, reason: string): void;
  error(target: T, error: ProtocolError): void;
  /** Reading should stop (true) or may go on (false): bytes pile up while a message inflates. */
  readPressure(target: T, stop: boolean): void;
  /**
   * Every byte pushed so far has been processed, after an asynchronous inflation held the rest
   * back: a peer that sent its last frames with a FIN may now be answered and ended.
   */
  caughtUp(target: T): void;
}

export interface MessageReaderOptions {
  readonly role: Role;
  readonly maxMessageSize: number;
  /** Present when permessage-deflate was negotiated. */
  readonly inflater: MessageInflater | null;
  /** Unparsed bytes held while inflation runs before reading is asked to stop. */
  readonly readHighWaterMark?: number;
  /**
   * Check that text messages and close reasons are UTF-8 (RFC 6455 §8.1; default true). Off
   * for peers trusted to send UTF-8: their text reaches the app unchecked.
   */
  readonly validateUtf8?: boolean;
  /** FrameParser's per-frame and frame-count limits (see FrameParserOptions). */
  readonly maxFrameSize?: number;
  readonly maxFragments?: number;
}

const EMPTY = Buffer.alloc(0);

/** RFC 6455 §8.1: text that is not UTF-8 fails the connection with 1007. */
const invalidUtf8 = (): ProtocolError => new ProtocolError('WS_ERR_INVALID_UTF8', 1007, 'text message is not valid UTF-8');

/**
 * MessageReader is the receive path after the socket: frames from the FrameParser are
 * inflated (RFC 7692), text is checked as UTF-8 while it arrives, fragments are assembled into
 * one growing buffer, and whole messages and control frames reach the handler.
 */
export class MessageReader<T> implements FrameHandler {
  readonly #events: MessageEvents<T>;
  readonly #target: T;
  readonly #parser: FrameParser;
  readonly #inflater: MessageInflater | null;
  readonly #maxMessageSize: number;
  readonly #highWaterMark: number;
  readonly #validateUtf8: boolean;
  readonly #utf8 = new Utf8Validator();

  // The message being assembled: its first piece is kept as is until a second one arrives.
  #first: Buffer | null = null;
  #assembly: Buffer | null = null;
  #length = 0;
  #inflating = false;
  #readStopped = false;
  /** Inside push() of a transient chunk. */
  #transient = false;
  #failed = false;

  constructor(events: MessageEvents<T>, target: T, options: MessageReaderOptions) {
    this.#events = events;
    this.#target = target;
    this.#inflater = options.inflater;
    this.#maxMessageSize = options.maxMessageSize;
    this.#highWaterMark = options.readHighWaterMark ?? 1024 * 1024;
    this.#validateUtf8 = options.validateUtf8 ?? true;
    this.#parser = new FrameParser(this, {
      role: options.role,
      maxMessageSize: options.maxMessageSize,
      rsv1Allowed: options.inflater !== null,
      maxFrameSize: options.maxFrameSize,
      maxFragments: options.maxFragments,
      partialText: this.#validateUtf8,
    });
  }

  /**
   * Parses `chunk`; messages and control frames reach the events before this returns, or later
   * when they complete. With `transient`, `chunk` is valid only during this call (a reused read
   * buffer): what is kept past it is copied (an incomplete frame, a first fragment), and the
   * messages handed out during the call are views of `chunk`, valid only while their event runs
   * (`transientMessages` tells the events).
   */
  push(chunk: Buffer, transient = false): void {
    this.#transient = transient;
    this.#parser.push(chunk, transient);
    this.#transient = false;
    // The first piece of a message still arriving is kept as is: it must not stay a view.
    if (transient && this.#first !== null && this.#first.length > 0 && this.#first.buffer === chunk.buffer) this.#first = Buffer.from(this.#first);
    if (!this.#readStopped && this.#parser.paused && this.#parser.bufferedBytes > this.#highWaterMark) {
      this.#readStopped = true;
      this.#events.readPressure(this.#target, true);
    }
  }

  /** Whether the message or frame being handed out is a view of a transient chunk (see push). */
  get transientMessages(): boolean {
    return this.#transient;
  }

  /** Ignores everything from now on (the connection is going away). */
  stop(): void {
    this.#parser.stop();
    this.#reset();
    // Nothing is buffered any more: reading may go on, so the peer's close or FIN is seen.
    if (this.#readStopped) {
      this.#readStopped = false;
      this.#events.readPressure(this.#target, false);
    }
  }

  onError(error: ProtocolError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.stop();
    this.#events.error(this.#target, error);
  }

  onFrame(opcode: Opcode, fin: boolean, compressed: boolean, payload: Buffer): void {
    switch (opcode) {
      case Opcode.Ping:
        this.#events.ping(this.#target, payload);
        return;
      case Opcode.Pong:
        this.#events.pong(this.#target, payload);
        return;
      case Opcode.Close:
        this.#onCloseFrame(payload);
        return;
    }
    if (compressed) {
      this.#inflate(payload, fin, opcode);
    } else {
      this.#data(payload, fin, opcode);
    }
  }

  #onCloseFrame(payload: Buffer): void {
    let info;
    try {
      info = parseClosePayload(payload, this.#validateUtf8);
    } catch (error) {
      if (isProtocolError(error)) return this.onError(error);
      throw error;
    }
    // RFC 6455 §5.5.1: after a close frame the peer sends no more data frames.
    this.stop();
    this.#events.close(this.#target, info.code, info.reason);
  }

  /** Text of a frame still arriving: checked now, so a bad byte fails before the rest comes (§8.1). */
  onPartialText(bytes: Buffer): void {
    this.#partialChecked += bytes.length;
    if (!this.#utf8.write(bytes)) this.onError(invalidUtf8());
  }

  #data(payload: Buffer, fin: boolean, opcode: Opcode): void {
    const starting = opcode !== Opcode.Continuation;
    if (starting) this.#binary = opcode === Opcode.Binary;
    if (!this.#binary && this.#validateUtf8) {
      // A whole message in one frame, seen at once: one native check. Otherwise check as it
      // arrives, so an invalid byte fails the connection before the rest is sent (§8.1).
      const checked = this.#partialChecked;
      this.#partialChecked = 0;
      const valid =
        starting && fin && checked === 0
          ? isValidUtf8(payload)
          : this.#utf8.write(checked === 0 ? payload : payload.subarray(checked)) && (!fin || this.#utf8.complete);
      if (!valid) return this.onError(invalidUtf8());
    }
    this.#append(payload);
    if (fin) this.#deliver();
  }

  #binary = false;
  /** Bytes of the current frame already checked by onPartialText. */
  #partialChecked = 0;

  #inflate(payload: Buffer, fin: boolean, opcode: Opcode): void {
    if (opcode !== Opcode.Continuation) this.#binary = opcode === Opcode.Binary;
    this.#inflating = true;
    this.#parser.pause();
    let synchronous = true;
    // An inflation that completes later reads its input then: a view of a transient chunk would
    // have been overwritten by the next read. (Inflating on the thread copies nothing.)
    const input = this.#transient && !this.#inflater!.synchronous ? Buffer.from(payload) : payload;
    this.#inflater!.decompress(input, fin, (error, data) => {
      this.#inflating = false;
      // Stopped (or failed) while this frame inflated: its result goes nowhere.
      if (this.#failed || this.#parser.stopped) return;
      if (error) return this.onError(error);
      const chunk = data ?? EMPTY;
      if (!this.#binary && this.#validateUtf8 && !(this.#utf8.write(chunk) && (!fin || this.#utf8.complete))) {
        return this.onError(invalidUtf8());
      }
      this.#append(chunk);
      if (fin) this.#deliver();
      if (this.#failed || this.#parser.stopped) return;
      this.#parser.resume();
      // Judged after resume(), which may parse all that piled up: reading stays stopped only
      // while the parser again waits on an inflation with too much queued behind it.
      const parser = this.#parser;
      if (this.#readStopped && !parser.stopped && !(parser.paused && parser.bufferedBytes > this.#highWaterMark)) {
        this.#readStopped = false;
        this.#events.readPressure(this.#target, false);
      }
      // A synchronous inflation runs inside the parser's loop, which goes on with the rest itself.
      if (!synchronous && !this.#inflating && !parser.stopped) this.#events.caughtUp(this.#target);
    });
    synchronous = false;
  }

  /** Whether a compressed frame is being inflated right now. */
  get inflating(): boolean {
    return this.#inflating;
  }

  #append(piece: Buffer): void {
    if (piece.length === 0) {
      if (this.#first === null && this.#assembly === null) this.#first = EMPTY;
      return;
    }
    const length = this.#length + piece.length;
    if (length > this.#maxMessageSize) {
      return this.onError(new ProtocolError('WS_ERR_MESSAGE_TOO_BIG', 1009, `message exceeds the limit of ${this.#maxMessageSize} bytes`));
    }
    if (this.#first === null && this.#assembly === null) {
      this.#first = piece;
    } else {
      let assembly = this.#assembly;
      if (assembly === null || assembly.length < length) {
        const capacity = Math.min(Math.max(length * 2, 1024), this.#maxMessageSize);
        const grown = Buffer.allocUnsafe(Math.max(capacity, length));
        if (assembly !== null) assembly.copy(grown, 0, 0, this.#length);
        else if (this.#first !== null) this.#first.copy(grown, 0);
        this.#first = null;
        assembly = this.#assembly = grown;
      }
      piece.copy(assembly, this.#length);
    }
    this.#length = length;
  }

  #deliver(): void {
    if (this.#failed) return;
    // Only the written part of the assembly buffer is handed out: no uninitialized bytes.
    const message = this.#assembly !== null ? this.#assembly.subarray(0, this.#length) : (this.#first ?? EMPTY);
    const isBinary = this.#binary;
    this.#reset();
    this.#events.message(this.#target, message, isBinary);
  }

  #reset(): void {
    this.#partialChecked = 0;
    this.#first = null;
    this.#assembly = null;
    this.#length = 0;
    this.#utf8.reset();
  }
}
