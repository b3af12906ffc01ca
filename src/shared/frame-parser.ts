import { ProtocolError } from './errors.ts';
import { unmask } from './mask.ts';
import { MAX_CONTROL_PAYLOAD, Opcode } from './opcodes.ts';

export type Role = 'server' | 'client';

/**
 * Memory charged against the message limit for every fragment after the first. Fragments are
 * assembled into one growing buffer, so they cost no memory of their own; the charge bounds the
 * work a flood of empty fragments can cause while leaving room for Autobahn 9.3/9.4
 * (4 MiB in 65,537 fragments fits a 16 MiB limit with 512 KiB to spare).
 */
export const FRAGMENT_OVERHEAD = 8;

export interface FrameParserOptions {
  /** A server receives masked frames only, a client unmasked frames only (RFC 6455 §5.1). */
  readonly role: Role;
  /** Largest message in payload bytes, all fragments together (before inflation). */
  readonly maxMessageSize: number;
  /** Whether a negotiated extension owns RSV1 (permessage-deflate, RFC 7692 §6). */
  readonly rsv1Allowed: boolean;
  /** Largest payload of one data frame, in bytes (1009 past it); default: the message limit. */
  readonly maxFrameSize?: number;
  /** Most frames one data message may arrive in (1009 past it); default: no count, only FRAGMENT_OVERHEAD. */
  readonly maxFragments?: number;
  /** Show text frames still arriving to onPartialText (default true; off when nothing checks them). */
  readonly partialText?: boolean;
}

export interface FrameHandler {
  /**
   * A complete, unmasked frame. `compressed` is the RSV1 bit of the message's first frame,
   * repeated on its continuations. The payload may be a view of the received chunk: it is
   * valid until the handler returns unless the handler keeps it (nothing else writes to it).
   */
  onFrame(opcode: Opcode, fin: boolean, compressed: boolean, payload: Buffer): void;
  /**
   * Bytes of an uncompressed text frame that has not fully arrived yet, unmasked, in order;
   * the same bytes then come again as the start of `onFrame`'s payload. Lets the receiver fail
   * invalid UTF-8 before the rest of a large frame is sent (RFC 6455 §8.1; Autobahn 6.4.3/6.4.4).
   */
  onPartialText?(bytes: Buffer): void;
  onError(error: ProtocolError): void;
}

const HEADER = 0;
const LENGTH_16 = 1;
const LENGTH_64 = 2;
const MASK_KEY = 3;
const PAYLOAD = 4;
const STOPPED = 5;
type State = typeof HEADER | typeof LENGTH_16 | typeof LENGTH_64 | typeof MASK_KEY | typeof PAYLOAD | typeof STOPPED;

/** No data message is open (the opcode of the fragmented message in progress otherwise). */
const NONE = -1;

const EMPTY = Buffer.alloc(0);
const KEY_SCRATCH = new Uint8Array(4);

/**
 * FrameParser turns received bytes into frames (RFC 6455 §5.2). It is incremental: a frame may
 * arrive split at any byte, or many frames in one chunk. It enforces every framing rule and the
 * size limits before allocating, so a declared length of 2^63-1 costs nothing; each violation
 * is reported once as a ProtocolError and the parser stops.
 */
export class FrameParser {
  readonly #handler: FrameHandler;
  readonly #masked: boolean;
  readonly #maxMessageSize: number;
  readonly #maxFrameSize: number;
  readonly #maxFragments: number;
  readonly #partialText: boolean;
  #rsv1Allowed: boolean;

  readonly #chunks: Buffer[] = [];
  #offset = 0; // read position in #chunks[0]
  #buffered = 0;

  #state: State = HEADER;
  #paused = false;
  #running = false;

  // The frame being read.
  #fin = false;
  #opcode = 0;
  #length = 0;
  /** The frame's mask key as one big-endian 32-bit number (no per-connection typed array). */
  #maskKey = 0;
  /** Payload bytes of the current frame already unmasked and shown to onPartialText. */
  #seen = 0;
  /** Where the next look resumes: a chunk index and the payload index its first byte has. */
  #partialChunk = 0;
  #partialStart = 0;

  // The data message being read (fragmented messages span several frames).
  #messageOpcode = NONE;
  #messageCompressed = false;
  #messageCharge = 0;
  /** Frames of the data message being read so far. */
  #messageFrames = 0;

  constructor(handler: FrameHandler, options: FrameParserOptions) {
    this.#handler = handler;
    this.#masked = options.role === 'server';
    this.#maxMessageSize = options.maxMessageSize;
    this.#maxFrameSize = options.maxFrameSize ?? Infinity;
    this.#maxFragments = options.maxFragments ?? Infinity;
    this.#partialText = (options.partialText ?? true) && handler.onPartialText !== undefined;
    this.#rsv1Allowed = options.rsv1Allowed;
  }

  /** Bytes received but not yet parsed (grows while paused). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Whether the parser has stopped for good (after an error or stop()). */
  get stopped(): boolean {
    return this.#state === STOPPED;
  }

  /** Allows RSV1 once permessage-deflate is negotiated (client side learns it from the 101). */
  set rsv1Allowed(allowed: boolean) {
    this.#rsv1Allowed = allowed;
  }

  /**
   * Parses `chunk`. A `transient` chunk is valid only during this call (a read buffer reused for
   * the next read): whatever of it is still unparsed when the call returns (a frame not yet
   * complete, bytes held while paused) is copied out, so nothing refers to it afterwards.
   */
  push(chunk: Buffer, transient = false): void {
    if (this.#state === STOPPED || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (!this.#paused && !this.#running) this.#run();
    if (transient && !this.stopped) this.#detach(chunk);
  }

  /** Replaces `chunk`, if still held, with a copy of its unparsed part. */
  #detach(chunk: Buffer): void {
    const chunks = this.#chunks;
    const at = chunks.lastIndexOf(chunk);
    if (at < 0) return;
    if (at === 0) {
      // Parsing resumes at #offset; keep the copy's first byte where it was (see #showPartial).
      chunks[0] = Buffer.from(chunk.subarray(this.#offset));
      this.#offset = 0;
    } else {
      chunks[at] = Buffer.from(chunk);
    }
  }

  /** Stops delivering frames (e.g. while a message inflates); bytes keep being buffered. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#running && this.#state !== STOPPED) this.#run();
  }

  /** Discards everything after this point (RFC 6455 §5.5.1: nothing follows a close frame). */
  stop(): void {
    this.#state = STOPPED;
    this.#seen = 0;
    this.#chunks.length = 0;
    this.#buffered = 0;
    this.#offset = 0;
  }

  #run(): void {
    this.#running = true;
    try {
      while (!this.#paused) {
        const progressed =
          this.#state === HEADER ? this.#readHeader()
          : this.#state === PAYLOAD ? this.#readPayload()
          : this.#state === LENGTH_16 ? this.#readLength16()
          : this.#state === LENGTH_64 ? this.#readLength64()
          : this.#state === MASK_KEY ? this.#readMaskKey()
          : false;
        if (!progressed) break;
      }
    } finally {
      this.#running = false;
    }
  }

  #readHeader(): boolean {
    if (this.#buffered < 2) return false;
    const b0 = this.#byteAt(0);
    const b1 = this.#byteAt(1);
    this.#skip(2);

    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const length7 = b1 & 0x7f;

    // RFC 6455 §5.2: RSV2/RSV3 MUST be 0 unless an extension defines them; none here does.
    if ((b0 & 0x30) !== 0) return this.#fail('WS_ERR_UNEXPECTED_RSV', 1002, 'RSV2 or RSV3 is set');

    if (opcode >= 0x8) {
      if (opcode > Opcode.Pong) return this.#fail('WS_ERR_INVALID_OPCODE', 1002, `reserved opcode 0x${opcode.toString(16)}`);
      // RFC 6455 §5.5: control frames MUST NOT be fragmented and carry at most 125 bytes.
      if (!fin) return this.#fail('WS_ERR_CONTROL_FRAGMENTED', 1002, 'fragmented control frame');
      if (length7 > MAX_CONTROL_PAYLOAD) return this.#fail('WS_ERR_CONTROL_TOO_BIG', 1002, 'control frame payload over 125 bytes');
      // RFC 7692 §6.1: RSV1 marks a compressed *data* message only.
      if (rsv1) return this.#fail('WS_ERR_UNEXPECTED_RSV', 1002, 'RSV1 set on a control frame');
    } else if (opcode === Opcode.Continuation) {
      if (this.#messageOpcode === NONE) return this.#fail('WS_ERR_UNEXPECTED_CONTINUATION', 1002, 'continuation frame without a message to continue');
      // RFC 7692 §6.1: only the first frame of a message carries RSV1.
      if (rsv1) return this.#fail('WS_ERR_UNEXPECTED_RSV', 1002, 'RSV1 set on a continuation frame');
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      if (this.#messageOpcode !== NONE) return this.#fail('WS_ERR_EXPECTED_CONTINUATION', 1002, 'new data message inside a fragmented message');
      if (rsv1 && !this.#rsv1Allowed) return this.#fail('WS_ERR_UNEXPECTED_RSV', 1002, 'RSV1 set without a negotiated extension');
      this.#messageCompressed = rsv1;
      this.#messageCharge = 0;
      this.#messageFrames = 0;
    } else {
      return this.#fail('WS_ERR_INVALID_OPCODE', 1002, `reserved opcode 0x${opcode.toString(16)}`);
    }

    // RFC 6455 §5.1: a server MUST close on an unmasked frame; a client on a masked one.
    if (masked !== this.#masked) {
      return this.#masked
        ? this.#fail('WS_ERR_MASK_REQUIRED', 1002, 'client frame is not masked')
        : this.#fail('WS_ERR_UNEXPECTED_MASK', 1002, 'server frame is masked');
    }

    this.#fin = fin;
    this.#opcode = opcode;
    if (length7 === 126) {
      this.#state = LENGTH_16;
    } else if (length7 === 127) {
      this.#state = LENGTH_64;
    } else {
      this.#length = length7;
      return this.#afterLength();
    }
    return true;
  }

  #readLength16(): boolean {
    if (this.#buffered < 2) return false;
    this.#length = (this.#byteAt(0) << 8) | this.#byteAt(1);
    this.#skip(2);
    return this.#afterLength();
  }

  #readLength64(): boolean {
    if (this.#buffered < 8) return false;
    const high = ((this.#byteAt(0) << 24) | (this.#byteAt(1) << 16) | (this.#byteAt(2) << 8) | this.#byteAt(3)) >>> 0;
    const low = ((this.#byteAt(4) << 24) | (this.#byteAt(5) << 16) | (this.#byteAt(6) << 8) | this.#byteAt(7)) >>> 0;
    this.#skip(8);
    // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
    if (high >= 0x80000000) return this.#fail('WS_ERR_INVALID_LENGTH', 1002, '64-bit payload length has its top bit set');
    // Anything past 2^53 is beyond every limit; keep the arithmetic exact below that.
    if (high >= 0x200000) return this.#fail('WS_ERR_FRAME_TOO_BIG', 1009, 'frame payload length exceeds the message limit');
    this.#length = high * 0x100000000 + low;
    return this.#afterLength();
  }

  /** Charges the frame against the message limit before any of its payload is buffered. */
  #afterLength(): boolean {
    if (this.#opcode < 0x8) {
      // The server's own limits, beside the message limit (RFC 6455 §10.4: an endpoint may
      // limit frame size and count and close with 1009).
      if (this.#length > this.#maxFrameSize) {
        return this.#fail('WS_ERR_FRAME_TOO_BIG', 1009, `frame payload of ${this.#length} bytes exceeds the frame limit of ${this.#maxFrameSize}`);
      }
      if (++this.#messageFrames > this.#maxFragments) {
        return this.#fail('WS_ERR_TOO_MANY_FRAGMENTS', 1009, `message arrives in more than ${this.#maxFragments} frames`);
      }
      const fragmentCharge = this.#opcode === Opcode.Continuation ? FRAGMENT_OVERHEAD : 0;
      const charge = this.#messageCharge + this.#length + fragmentCharge;
      // A compressed message is limited on its inflated size by the inflater; its wire size
      // only needs to stay near the limit (deflate can grow incompressible data by a little).
      const limit = this.#messageCompressed ? this.#maxMessageSize + (this.#maxMessageSize >>> 10) + 64 : this.#maxMessageSize;
      if (charge > limit) {
        return this.#fail(
          this.#length > this.#maxMessageSize ? 'WS_ERR_FRAME_TOO_BIG' : 'WS_ERR_MESSAGE_TOO_BIG',
          1009,
          `message exceeds the limit of ${this.#maxMessageSize} bytes`,
        );
      }
      this.#messageCharge = charge;
    }
    this.#state = this.#masked ? MASK_KEY : PAYLOAD;
    return true;
  }

  #readMaskKey(): boolean {
    if (this.#buffered < 4) return false;
    this.#maskKey = ((this.#byteAt(0) << 24) | (this.#byteAt(1) << 16) | (this.#byteAt(2) << 8) | this.#byteAt(3)) >>> 0;
    this.#skip(4);
    this.#state = PAYLOAD;
    return true;
  }

  #readPayload(): boolean {
    const length = this.#length;
    if (this.#buffered < length) {
      if (this.#partialText && this.#buffered > this.#seen && this.#isPlainText()) this.#showPartial();
      return false;
    }
    const payload = length === 0 ? EMPTY : this.#take(length);
    const seen = this.#seen;
    this.#seen = 0;
    if (this.#masked && length > seen) unmask(seen === 0 ? payload : payload.subarray(seen), this.#keyFrom(seen));

    const opcode = this.#opcode as Opcode;
    const fin = this.#fin;
    let compressed = false;
    if (opcode < 0x8) {
      if (this.#messageOpcode === NONE) this.#messageOpcode = opcode;
      compressed = this.#messageCompressed;
      if (fin) this.#messageOpcode = NONE;
    }
    this.#state = HEADER;
    this.#handler.onFrame(opcode, fin, compressed, payload);
    return !this.stopped;
  }

  /** Whether the frame being read belongs to an uncompressed text message. */
  #isPlainText(): boolean {
    const opcode = this.#opcode;
    return !this.#messageCompressed && (opcode === Opcode.Text || (opcode === Opcode.Continuation && this.#messageOpcode === Opcode.Text));
  }

  /** Unmasks the payload bytes that arrived since the last look and hands them to onPartialText. */
  #showPartial(): void {
    const seen = this.#seen;
    // While a frame is incomplete its chunks are only appended to: resume where the last look
    // stopped, so a frame trickling in many small reads costs linear time, not quadratic.
    let c = seen === 0 ? 0 : this.#partialChunk;
    let index = seen === 0 ? 0 : this.#partialStart; // payload index of chunk c's first byte
    for (; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c]!;
      const start = c === 0 ? this.#offset : 0;
      const size = chunk.length - start;
      if (index + size > seen) {
        const from = Math.max(seen, index);
        const view = chunk.subarray(start + (from - index));
        if (this.#masked) unmask(view, this.#keyFrom(from));
        this.#handler.onPartialText!(view);
        if (this.stopped) return;
      }
      index += size;
    }
    this.#seen = index;
    this.#partialChunk = c;
    this.#partialStart = index;
  }

  /**
   * The mask key as it applies from payload byte `position` on (RFC 6455 §5.3: j = i mod 4), in
   * a scratch array shared by every parser of the thread: it is used at once, never kept.
   */
  #keyFrom(position: number): Uint8Array {
    const key = this.#maskKey;
    const phase = position & 3;
    for (let j = 0; j < 4; j++) KEY_SCRATCH[j] = (key >>> (24 - 8 * ((j + phase) & 3))) & 0xff;
    return KEY_SCRATCH;
  }

  #fail(code: ProtocolError['code'], closeCode: ProtocolError['closeCode'], message: string): false {
    this.stop();
    this.#handler.onError(new ProtocolError(code, closeCode, message));
    return false;
  }

  #byteAt(index: number): number {
    let i = this.#offset + index;
    let c = 0;
    let chunk = this.#chunks[0]!;
    while (i >= chunk.length) {
      i -= chunk.length;
      chunk = this.#chunks[++c]!;
    }
    return chunk[i]!;
  }

  #skip(n: number): void {
    this.#buffered -= n;
    const chunks = this.#chunks;
    while (n > 0) {
      const rest = chunks[0]!.length - this.#offset;
      if (n < rest) {
        this.#offset += n;
        return;
      }
      n -= rest;
      chunks.shift();
      this.#offset = 0;
    }
  }

  /** Removes `n` bytes: a view when they lie in one chunk, else one copy into a fresh buffer. */
  #take(n: number): Buffer {
    const chunks = this.#chunks;
    const first = chunks[0]!;
    const rest = first.length - this.#offset;
    if (n <= rest) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return view;
    }
    // One splice at the end: a shift() per chunk is quadratic when a frame trickles in tiny reads.
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let c = 0;
    let offset = this.#offset;
    while (written < n) {
      const chunk = chunks[c]!;
      const count = Math.min(chunk.length - offset, n - written);
      chunk.copy(out, written, offset, offset + count);
      written += count;
      offset += count;
      if (offset === chunk.length) {
        c++;
        offset = 0;
      }
    }
    chunks.splice(0, c);
    this.#offset = offset;
    this.#buffered -= n;
    return out;
  }
}
