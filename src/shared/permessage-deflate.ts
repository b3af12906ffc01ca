/**
 * permessage-deflate (RFC 7692): negotiation of its four parameters (§7.1) and the codec that
 * compresses and inflates whole messages (§7.2). Thread-agnostic: a worker owns one
 * PerMessageDeflate per connection, plus `deflateMessageShared` to compress a broadcast once.
 *
 * Window 8 (the one zlib quirk that matters here): zlib refuses windowBits 8 for raw deflate, and
 * Node silently turns 8 into 9. That is safe, not a violation: zlib never emits a match distance
 * beyond w_size - MIN_LOOKAHEAD (MAX_DIST in deflate.h), i.e. 512 - 262 = 250 bytes for a 9-bit
 * window, which fits the 256-byte window a peer negotiated with `*_max_window_bits=8` — Node's docs
 * say the same ("effectively uses an 8-bit window only"). So we accept 8 everywhere, compress with 9,
 * and inflate an 8-bit peer with 9 too, since a larger inflate window is always safe and also
 * forgives a peer whose own library made the same upgrade less carefully.
 */
import { constants, createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import type { DeflateRaw, InflateRaw } from 'node:zlib';
import { kMaxLength } from 'node:buffer';
import { HandshakeError, ProtocolError } from './errors.ts';
import { OutputLimitError, ZlibContext, zlibContextSupported } from './zlib-context.ts';
import { formatExtension } from './extension-header.ts';
import type { ExtensionOffer } from './extension-header.ts';

export const PERMESSAGE_DEFLATE = 'permessage-deflate';

export type WindowBits = 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15;

/** The negotiated parameters (RFC 7692 §7.1), the same on both ends of a connection. */
export interface DeflateParams {
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  readonly serverMaxWindowBits: WindowBits;
  readonly clientMaxWindowBits: WindowBits;
}

/**
 * Who keeps zlib state for one direction of a connection. `shared`: the worker's one context,
 * reset after every message, so that direction negotiates no context takeover (RFC 7692
 * §7.1.1) and a connection holds no zlib memory for it. `dedicated`: the connection's own
 * context, kept between messages (context takeover) unless the peer asks otherwise.
 */
export type DeflateSide = 'shared' | 'dedicated';

/** What the server negotiates with (the resolved `deflate` option, config.ts). */
export interface DeflateOptions {
  /** Server→client messages. */
  readonly compressor: DeflateSide;
  /** Client→server messages. */
  readonly decompressor: DeflateSide;
  /** Upper bound on our (server→client) window; a client may ask for less. Default 15. */
  readonly serverMaxWindowBits?: WindowBits;
  /** Upper bound on the client's window (RFC 7692 §7.1.2.2). Default 15. */
  readonly clientMaxWindowBits?: WindowBits;
}

/** What a client offers (and later checks the server's response against). */
export interface DeflateOfferOptions {
  /** `true` offers `client_max_window_bits` without a value (the server picks); omit to not offer it. */
  clientMaxWindowBits?: WindowBits | true;
  serverMaxWindowBits?: WindowBits;
  clientNoContextTakeover?: boolean;
  serverNoContextTakeover?: boolean;
}

export interface DeflateCodecOptions {
  /** Largest inflated message accepted, in bytes; larger ones fail with 1009 as soon as they pass it. */
  maxMessageSize: number;
  level?: number;
  memLevel?: number;
  threshold?: number;
  /**
   * Run zlib on the calling thread with contexts kept between messages (zlib-context.ts), in
   * both directions and with or without context takeover. Default: wherever this Node allows
   * it; false keeps the older split (one-shot sync calls without context, the thread pool with).
   */
  onThread?: boolean;
}

export type CompressCallback = (err: Error | null, out?: Buffer) => void;
export type DecompressCallback = (err: ProtocolError | null, chunk?: Buffer) => void;

/**
 * Level 1 (zlib's deflate_fast): on ~70 KB of JSON it compresses ~3.5× faster than the default 6
 * for output ~5% larger; per-message CPU matters more than a few bytes for chatty sockets.
 */
export const DEFAULT_LEVEL = 1;
export const DEFAULT_MEM_LEVEL = 8;
/** Messages below this many bytes go out uncompressed: deflate's headers and a cold window gain little on them. */
export const DEFAULT_THRESHOLD = 128;

/** RFC 7692 §7.2.1 / §7.2.2: the empty stored block that ends a sync flush. */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const EMPTY = Buffer.alloc(0);

const SERVER_NO_CONTEXT_TAKEOVER = 'server_no_context_takeover';
const CLIENT_NO_CONTEXT_TAKEOVER = 'client_no_context_takeover';
const SERVER_MAX_WINDOW_BITS = 'server_max_window_bits';
const CLIENT_MAX_WINDOW_BITS = 'client_max_window_bits';

// ---------------------------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1)

/** The params of one offer or response element, checked for shape but not yet negotiated. */
interface DeflateElement {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: WindowBits | undefined;
  /** `true`: offered without a value (only legal in an offer, §7.1.2.2). */
  clientMaxWindowBits: WindowBits | true | undefined;
}

/** RFC 7692 §7.1.2.1: 1*DIGIT from 8 to 15, no leading zeros. */
function parseWindowBits(value: string | true): WindowBits | undefined {
  if (value === true) return undefined;
  if (value.length === 1) return value === '8' || value === '9' ? (Number(value) as WindowBits) : undefined;
  if (value.length === 2 && value.charCodeAt(0) === 0x31) {
    const d = value.charCodeAt(1) - 0x30;
    return d >= 0 && d <= 5 ? ((10 + d) as WindowBits) : undefined;
  }
  return undefined;
}

/** readElement checks one element's params; returns the reason it is invalid as a string. */
function readElement(element: ExtensionOffer, isOffer: boolean): DeflateElement | string {
  if (element.repeatedParams !== undefined && element.repeatedParams.length > 0) {
    return `parameter ${element.repeatedParams[0]} appears more than once`; // §7: MUST NOT repeat
  }
  const out: DeflateElement = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  };
  for (const [name, value] of element.params) {
    switch (name) {
      case SERVER_NO_CONTEXT_TAKEOVER:
      case CLIENT_NO_CONTEXT_TAKEOVER:
        // §7.1.1.1, §7.1.1.2: these have no value.
        if (value !== true) return `parameter ${name} must not have a value`;
        if (name === SERVER_NO_CONTEXT_TAKEOVER) out.serverNoContextTakeover = true;
        else out.clientNoContextTakeover = true;
        break;
      case SERVER_MAX_WINDOW_BITS: {
        const bits = parseWindowBits(value);
        if (bits === undefined) return `parameter ${name} needs a value from 8 to 15`;
        out.serverMaxWindowBits = bits;
        break;
      }
      case CLIENT_MAX_WINDOW_BITS: {
        // §7.1.2.2: may be valueless in an offer; a response must carry a value.
        if (value === true && isOffer) {
          out.clientMaxWindowBits = true;
          break;
        }
        const bits = parseWindowBits(value);
        if (bits === undefined) return `parameter ${name} needs a value from 8 to 15`;
        out.clientMaxWindowBits = bits;
        break;
      }
      default:
        return `unknown parameter ${name.slice(0, 64)}`; // §7: decline/fail on unknown params
    }
  }
  return out;
}

const minBits = (a: WindowBits, b: WindowBits | undefined): WindowBits => (b !== undefined && b < a ? b : a);

/**
 * acceptDeflateOffer picks the first acceptable `permessage-deflate` element of a client's
 * Sec-WebSocket-Extensions (RFC 7692 §5: a server declines offers it cannot accept and tries the
 * next) and returns the negotiated params with the response element to send, or null when none
 * is acceptable. Malformed offers (unknown or repeated params, bad values) are skipped, not fatal.
 * Any requested window 8..15 is honoured; the server's own limits only ever lower it.
 */
export function acceptDeflateOffer(
  offers: readonly ExtensionOffer[],
  opts: DeflateOptions,
): { params: DeflateParams; response: string } | null {
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const el = readElement(offer, true);
    if (typeof el === 'string') continue;

    // §7.1.1.1: a request for server_no_context_takeover is honoured; a shared compressor
    // always imposes it (one context per worker, reset after every message).
    const serverNoContextTakeover = opts.compressor === 'shared' || el.serverNoContextTakeover;
    // §7.1.2.1: the response value must not exceed the requested one.
    const serverMaxWindowBits = minBits(el.serverMaxWindowBits ?? 15, opts.serverMaxWindowBits);

    // §7.1.2.2: only a client that offered client_max_window_bits can be given a smaller
    // window. One that did not is asked for client_no_context_takeover instead (§7.1.1.2: a
    // server may always ask for it): its messages are then inflated by the worker's shared
    // context, so the connection keeps no window larger than the limit, and compression stays on.
    const clientLimit = opts.clientMaxWindowBits ?? 15;
    const limitable = el.clientMaxWindowBits !== undefined;
    // Echoing a client's own client_no_context_takeover hint costs it nothing and lets us drop
    // inflate context between its messages.
    const clientNoContextTakeover = opts.decompressor === 'shared' || el.clientNoContextTakeover || (clientLimit < 15 && !limitable);
    const clientOffered = el.clientMaxWindowBits === true ? 15 : el.clientMaxWindowBits;
    const clientMaxWindowBits = limitable ? minBits(clientOffered ?? 15, clientLimit) : 15;

    const response: [string, string | true][] = [];
    if (serverNoContextTakeover) response.push([SERVER_NO_CONTEXT_TAKEOVER, true]);
    if (clientNoContextTakeover) response.push([CLIENT_NO_CONTEXT_TAKEOVER, true]);
    if (el.serverMaxWindowBits !== undefined || serverMaxWindowBits < 15) {
      response.push([SERVER_MAX_WINDOW_BITS, String(serverMaxWindowBits)]);
    }
    // §7.1.2.2: only answer client_max_window_bits when the client offered it.
    if (limitable && clientMaxWindowBits < 15) {
      response.push([CLIENT_MAX_WINDOW_BITS, String(clientMaxWindowBits)]);
    }
    return {
      params: { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits },
      response: formatExtension(PERMESSAGE_DEFLATE, response),
    };
  }
  return null;
}

export const isWindowBits = (v: unknown): v is WindowBits => typeof v === 'number' && Number.isInteger(v) && v >= 8 && v <= 15;

/** buildDeflateOffer formats a client's single `permessage-deflate` offer. */
export function buildDeflateOffer(opts: DeflateOfferOptions = {}): string {
  const params: [string, string | true][] = [];
  if (opts.serverNoContextTakeover === true) params.push([SERVER_NO_CONTEXT_TAKEOVER, true]);
  if (opts.clientNoContextTakeover === true) params.push([CLIENT_NO_CONTEXT_TAKEOVER, true]);
  if (opts.serverMaxWindowBits !== undefined) {
    if (!isWindowBits(opts.serverMaxWindowBits)) throw new RangeError('serverMaxWindowBits must be an integer from 8 to 15');
    params.push([SERVER_MAX_WINDOW_BITS, String(opts.serverMaxWindowBits)]);
  }
  if (opts.clientMaxWindowBits === true) params.push([CLIENT_MAX_WINDOW_BITS, true]);
  else if (opts.clientMaxWindowBits !== undefined) {
    if (!isWindowBits(opts.clientMaxWindowBits)) throw new RangeError('clientMaxWindowBits must be true or an integer from 8 to 15');
    params.push([CLIENT_MAX_WINDOW_BITS, String(opts.clientMaxWindowBits)]);
  }
  return formatExtension(PERMESSAGE_DEFLATE, params);
}

/**
 * acceptDeflateResponse checks a server's Sec-WebSocket-Extensions against what we offered
 * (RFC 7692 §7.1: the client MUST _Fail the WebSocket Connection_ on an invalid response) and
 * returns the negotiated params. We offer only permessage-deflate, so the response must be exactly
 * one element of it. Throws HandshakeError(400).
 */
export function acceptDeflateResponse(response: readonly ExtensionOffer[], offered: DeflateOfferOptions): DeflateParams {
  const fail = (reason: string): never => {
    throw new HandshakeError(400, `Invalid permessage-deflate response: ${reason}`);
  };
  let element: ExtensionOffer | undefined;
  for (const e of response) {
    // RFC 6455 §4.1: an extension that was not requested fails the connection.
    if (e.name !== PERMESSAGE_DEFLATE) fail(`extension ${e.name.slice(0, 64)} was not offered`);
    // §5: the response holds at most one element per extension.
    if (element !== undefined) fail('more than one permessage-deflate element');
    element = e;
  }
  if (element === undefined) return fail('no permessage-deflate element');
  const el = readElement(element, false);
  if (typeof el === 'string') return fail(el);

  // §7.1.1.1: a server accepting our server_no_context_takeover must echo it.
  if (offered.serverNoContextTakeover === true && !el.serverNoContextTakeover) fail('server_no_context_takeover missing');
  // §7.1.2.1: a requested server_max_window_bits must be answered with a value no larger.
  let serverMaxWindowBits: WindowBits = 15;
  if (offered.serverMaxWindowBits !== undefined) {
    if (el.serverMaxWindowBits === undefined) fail('server_max_window_bits missing');
    else if (el.serverMaxWindowBits > offered.serverMaxWindowBits) fail('server_max_window_bits larger than offered');
  }
  if (el.serverMaxWindowBits !== undefined) serverMaxWindowBits = el.serverMaxWindowBits;

  // §7.1.2.2: client_max_window_bits only if we offered it, and no larger than our value.
  const clientOffered = offered.clientMaxWindowBits;
  let clientMaxWindowBits: WindowBits = typeof clientOffered === 'number' ? clientOffered : 15;
  if (typeof el.clientMaxWindowBits === 'number') {
    if (clientOffered === undefined) fail('client_max_window_bits was not offered');
    else if (el.clientMaxWindowBits > clientMaxWindowBits) fail('client_max_window_bits larger than offered');
    clientMaxWindowBits = el.clientMaxWindowBits;
  }

  return {
    serverNoContextTakeover: el.serverNoContextTakeover,
    // §7.1.1.2: the server may impose it; if we offered it, we promised it anyway.
    clientNoContextTakeover: el.clientNoContextTakeover || offered.clientNoContextTakeover === true,
    serverMaxWindowBits,
    clientMaxWindowBits,
  };
}

function checkCodecNumbers(opts: { level?: number; memLevel?: number; threshold?: number }): void {
  const { level, memLevel, threshold } = opts;
  if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 9)) {
    throw new RangeError('level must be an integer from 0 to 9');
  }
  if (memLevel !== undefined && !(Number.isInteger(memLevel) && memLevel >= 1 && memLevel <= 9)) {
    throw new RangeError('memLevel must be an integer from 1 to 9');
  }
  if (threshold !== undefined && !(threshold >= 0)) throw new RangeError('threshold must be a number >= 0');
}

// ---------------------------------------------------------------------------------------------
// Codec (RFC 7692 §7.2)

/** zlib's raw deflate cannot run an 8-bit window; 9 is equivalent (see the top of this file). */
const zlibBits = (bits: WindowBits): number => (bits === 8 ? 9 : bits);

/** An empty message is one empty stored block, 0x00 after the trailer is removed (RFC 7692 §7.2.3.6). */
const emptyMessage = (): Buffer => Buffer.from([0x00]);

/** §7.2.1: a sync flush ends with 00 00 ff ff; the message omits those 4 octets. */
function stripTrailer(out: Buffer): Buffer {
  const n = out.length;
  if (n < 4 || out[n - 4] !== 0x00 || out[n - 3] !== 0x00 || out[n - 2] !== 0xff || out[n - 1] !== 0xff) {
    throw new Error('zlib sync flush did not end with 00 00 ff ff');
  }
  return out.subarray(0, n - 4);
}

const concat = (chunks: Buffer[], length: number): Buffer =>
  chunks.length === 1 ? chunks[0]! : chunks.length === 0 ? EMPTY : Buffer.concat(chunks, length);

/**
 * Deflate contexts of this thread for messages compressed without context (one per window,
 * level and memory level in use; a server typically has one): reset after every message, so the
 * ~256 KiB of zlib state is set up once per thread instead of once per message.
 */
const noContextDeflaters = new Map<number, ZlibContext>();

function threadDeflater(windowBits: number, level: number, memLevel: number): ZlibContext | null {
  if (!zlibContextSupported) return null;
  const key = (windowBits << 8) | (level << 4) | memLevel;
  let context = noContextDeflaters.get(key);
  if (context === undefined || context.failed) {
    context = ZlibContext.create('deflate', { windowBits, level, memLevel })!;
    noContextDeflaters.set(key, context);
  }
  return context;
}

/** Inflates any message sent without context: a 15-bit window reads every smaller one. */
let noContextInflater: ZlibContext | null = null;

function threadInflater(): ZlibContext | null {
  if (!zlibContextSupported) return null;
  if (noContextInflater === null || noContextInflater.failed) noContextInflater = ZlibContext.create('inflate', { windowBits: 15 });
  return noContextInflater;
}

/**
 * deflateMessageShared compresses one whole message with no context (as under
 * `server_no_context_takeover`), so the same bytes can go to every connection whose negotiated
 * server window is at least `windowBits`. Synchronous: use it for a broadcast compressed once.
 */
export function deflateMessageShared(
  data: Buffer,
  windowBits: WindowBits,
  level: number = DEFAULT_LEVEL,
  memLevel: number = DEFAULT_MEM_LEVEL,
): Buffer {
  if (data.length === 0) return emptyMessage();
  return stripTrailer(deflateWithoutContext(data, windowBits, level, memLevel));
}

/** `data` deflated from an empty window with a sync flush, trailer and all (not empty). */
function deflateWithoutContext(data: Buffer, windowBits: WindowBits, level: number, memLevel: number): Buffer {
  const context = threadDeflater(zlibBits(windowBits), level, memLevel);
  if (context === null) {
    return deflateRawSync(data, { windowBits: zlibBits(windowBits), level, memLevel, finishFlush: constants.Z_SYNC_FLUSH });
  }
  try {
    return context.process(data);
  } finally {
    context.reset();
  }
}

interface CompressJob {
  readonly data: Buffer;
  readonly cb: CompressCallback;
}
interface DecompressJob {
  readonly data: Buffer;
  readonly fin: boolean;
  readonly cb: DecompressCallback;
}

const invalidData = (err: Error): ProtocolError =>
  new ProtocolError('WS_ERR_INVALID_COMPRESSED_DATA', 1007, `Invalid compressed data: ${err.message}`);

/**
 * PerMessageDeflate is one connection's codec. Our deflate window is the negotiated window of our
 * role, the inflate window the peer's; context is reset after every message in a direction whose
 * `*_no_context_takeover` was negotiated (§7.1.1). zlib streams are created lazily, so a connection
 * that never sends or receives compressed messages holds no zlib memory.
 *
 * compress/decompress are asynchronous (zlib's thread pool), queued per direction and completed
 * in call order; their callbacks never run inside the call. Input buffers must stay unchanged
 * until their callback runs. After close(), no callback runs at all.
 */
export class PerMessageDeflate {
  readonly role: 'server' | 'client';
  readonly params: DeflateParams;
  readonly maxMessageSize: number;
  /** Messages smaller than this are better sent uncompressed; the caller decides RSV1. */
  readonly threshold: number;

  readonly #level: number;
  readonly #memLevel: number;
  readonly #deflateBits: WindowBits;
  readonly #inflateBits: WindowBits;
  readonly #deflateNoContext: boolean;
  readonly #inflateNoContext: boolean;
  /** zlib runs on the calling thread with contexts kept (DeflateCodecOptions.onThread). */
  readonly onThread: boolean;
  #closed = false;
  /** This connection's own contexts (on-thread mode): ours when we keep context, the peer's when
   * it does or while one of its messages comes in fragments. */
  #deflateContext: ZlibContext | null = null;
  #inflateContext: ZlibContext | null = null;
  /** Inflated bytes of the message arriving on the thread (its frames so far). */
  #syncMessageLength = 0;
  /** Our kept context must start over before the next message (restartDeflate). */
  #deflateStale = false;

  #deflate: DeflateRaw | null = null;
  readonly #compressQueue: CompressJob[] = [];
  readonly #deflateChunks: Buffer[] = [];
  #deflateLength = 0;
  #deflateError: Error | null = null;

  #inflate: InflateRaw | null = null;
  readonly #decompressQueue: DecompressJob[] = [];
  readonly #inflateChunks: Buffer[] = [];
  #frameLength = 0; // inflated bytes of the current frame
  #messageLength = 0; // inflated bytes of the current message, checked against maxMessageSize
  #inflateWritten = 0; // bytes written to #inflate, to notice a stream that ended (BFINAL)
  #inflateEnded = false;
  #inflateError: ProtocolError | null = null;

  constructor(role: 'server' | 'client', params: DeflateParams, opts: DeflateCodecOptions) {
    const { maxMessageSize } = opts;
    if (!(maxMessageSize >= 0) || !(Number.isInteger(maxMessageSize) || maxMessageSize === Infinity)) {
      throw new RangeError('maxMessageSize must be an integer >= 0 or Infinity');
    }
    checkCodecNumbers(opts);
    if (!isWindowBits(params.serverMaxWindowBits) || !isWindowBits(params.clientMaxWindowBits)) {
      throw new RangeError('window bits must be integers from 8 to 15');
    }
    this.role = role;
    this.params = params;
    this.maxMessageSize = maxMessageSize;
    this.threshold = opts.threshold ?? DEFAULT_THRESHOLD;
    this.#level = opts.level ?? DEFAULT_LEVEL;
    this.#memLevel = opts.memLevel ?? DEFAULT_MEM_LEVEL;
    const isServer = role === 'server';
    this.#deflateBits = isServer ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    this.#inflateBits = isServer ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    this.#deflateNoContext = isServer ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    this.#inflateNoContext = isServer ? params.clientNoContextTakeover : params.serverNoContextTakeover;
    this.onThread = (opts.onThread ?? true) && zlibContextSupported;
  }

  /**
   * Whether compressSync may be used: on the thread with a kept context, or (without) when our
   * direction keeps no context, which Node's one-shot calls can do.
   */
  get canCompressSync(): boolean {
    return this.onThread || this.#deflateNoContext;
  }

  /** Whether decompressSync (a whole message, one-shot) may be used: the peer's direction keeps no context. */
  get canDecompressSync(): boolean {
    return this.#inflateNoContext;
  }

  /**
   * compress deflates one whole message; `out` is the payload to send with RSV1 set, the trailing
   * 00 00 ff ff already removed (§7.2.1).
   */
  compress(data: Buffer, cb: CompressCallback): void {
    if (this.#closed) return;
    this.#compressQueue.push({ data, cb });
    if (this.#compressQueue.length === 1) this.#startCompress();
  }

  /** compressSync is compress without the thread pool; only when canCompressSync. */
  compressSync(data: Buffer): Buffer {
    if (this.#deflateNoContext) return deflateMessageShared(data, this.#deflateBits, this.#level, this.#memLevel);
    if (!this.onThread) throw new Error('compressSync needs no_context_takeover in our direction (RFC 7692 §7.1.1)');
    if (this.#closed) throw new Error('the codec is closed');
    if (data.length === 0) return emptyMessage();
    return stripTrailer(this.#ownDeflater().process(data));
  }

  /**
   * The connection's own deflate context (on-thread mode, our direction keeps context). §7.1.1:
   * with context takeover the next message may refer back into this one, so the context is
   * kept and reset only when restartDeflate asks.
   */
  #ownDeflater(): ZlibContext {
    const context = (this.#deflateContext ??= ZlibContext.create('deflate', { windowBits: zlibBits(this.#deflateBits), level: this.#level, memLevel: this.#memLevel })!);
    if (this.#deflateStale) {
      this.#deflateStale = false;
      context.reset();
    }
    return context;
  }

  /**
   * compressFragmentSync compresses one piece of a message sent in fragments (`fin` on its last
   * piece); only when canCompressSync. RFC 7692 §6.1: a compressed message's payload is the
   * concatenation of its frames' payloads, so each piece ends on a sync flush (byte-aligned,
   * the receiver can inflate it as it comes), and only the last drops the 00 00 ff ff the
   * receiver puts back (§7.2.1; an empty last piece is the empty stored block's first byte,
   * 0x00, as an empty message is, §7.2.3.6). Without context in our direction each piece is
   * compressed from an empty window on the thread's shared context, as a message of its own:
   * its blocks refer only to itself, so the concatenation is still one valid DEFLATE stream, and
   * the connection holds no context between pieces. With context, the connection's own context
   * runs across the pieces and on into the next message.
   */
  compressFragmentSync(data: Buffer, fin: boolean): Buffer {
    if (!this.canCompressSync) throw new Error('compressFragmentSync needs canCompressSync');
    if (this.#closed) throw new Error('the codec is closed');
    if (data.length === 0) return fin ? emptyMessage() : EMPTY;
    let out: Buffer;
    if (this.#deflateNoContext) {
      out = deflateWithoutContext(data, this.#deflateBits, this.#level, this.#memLevel);
    } else {
      const context = this.#ownDeflater();
      out = context.process(data);
    }
    return fin ? stripTrailer(out) : out;
  }

  /**
   * A message compressed without our context went out between ours (a broadcast compressed
   * once for many connections). The peer's inflater now holds its bytes in its window, which
   * our compressor never saw: were our next message to refer back by distance, it would point
   * at the wrong bytes. So a context we keep starts over from an empty window first: what we
   * send then refers only to itself and what follows, which the peer holds as we do (a peer
   * window with more in it than we refer to is harmless, RFC 7692 §7.1.1 lets us use less
   * context than allowed). Costs our next message its history, never its correctness.
   */
  restartDeflate(): void {
    if (!this.#deflateNoContext) this.#deflateStale = true;
  }

  /**
   * inflateFrame inflates one frame of a compressed message on the calling thread (`fin` on its
   * last frame) and returns what it produced; only when `onThread`. A whole message in one frame
   * from a peer without context uses the thread's shared inflater; anything else (context
   * takeover, fragments) the connection's own. Throws ProtocolError: 1009 once the message
   * passes maxMessageSize (no more than one 64 KiB chunk is inflated past it), 1007 for corrupt
   * data; after an error every later call throws the same.
   */
  inflateFrame(data: Buffer, fin: boolean): Buffer {
    if (this.#inflateError !== null) throw this.#inflateError;
    if (!this.onThread || this.#closed) throw new Error('inflateFrame needs an open codec with onThread');
    const limit = this.maxMessageSize - this.#syncMessageLength;
    const whole = fin && this.#syncMessageLength === 0 && this.#inflateContext === null;
    const shared = whole && this.#inflateNoContext;
    const context = shared ? threadInflater()! : (this.#inflateContext ??= ZlibContext.create('inflate', { windowBits: zlibBits(this.#inflateBits) })!);
    let out: Buffer;
    try {
      // §7.2.2: the message's last frame gets back the 00 00 ff ff its sender removed. Without
      // context it adds nothing; with context it ends the empty stored block the next message
      // is read after.
      out = context.process(data, limit, fin ? TRAILER : null);
    } catch (error) {
      if (shared) context.reset();
      throw (this.#inflateError = error instanceof OutputLimitError ? tooBig(this.maxMessageSize) : invalidData(error as Error));
    }
    this.#syncMessageLength += out.length;
    if (fin) {
      this.#syncMessageLength = 0;
      // §7.1.1: a peer without context starts every message from an empty window; a peer that
      // ended its DEFLATE stream (a final block, §7.2.3.3) starts a new one.
      if (shared || this.#inflateNoContext || context.ended) context.reset();
      // A fragmented message from a peer without context is done with the connection's own.
      if (!shared && this.#inflateNoContext) {
        this.#inflateContext?.close();
        this.#inflateContext = null;
      }
    }
    return out;
  }

  /**
   * decompress inflates one frame's payload of a compressed message (`fin` on its last frame) and
   * delivers the bytes this frame produced — possibly empty — so text can be UTF-8 validated as it
   * arrives. Fails with 1009 the moment the message's inflated size passes maxMessageSize (no more
   * than about one zlib chunk is inflated past it), with 1007 on corrupt data; after an error every
   * later call fails with the same error.
   */
  decompress(data: Buffer, fin: boolean, cb: DecompressCallback): void {
    if (this.#closed) return;
    if (this.#inflateError !== null) {
      process.nextTick(cb, this.#inflateError); // the queue was emptied when the error happened
      return;
    }
    this.#decompressQueue.push({ data, fin, cb });
    if (this.#decompressQueue.length === 1) this.#startDecompress();
  }

  /**
   * decompressSync inflates a whole message at once; only when canDecompressSync and no async
   * message is in progress. Throws ProtocolError (1009 past maxMessageSize, 1007 if corrupt).
   */
  decompressSync(data: Buffer): Buffer {
    if (!this.#inflateNoContext) throw new Error('decompressSync needs no_context_takeover from the peer (RFC 7692 §7.1.1)');
    if (this.#inflateError !== null) throw this.#inflateError;
    const limit = this.maxMessageSize;
    let out: Buffer;
    try {
      // The 00 00 ff ff trailer (§7.2.2) only completes an empty stored block: it adds no output,
      // and with no context to keep, a sync flush that stops before it yields the same bytes.
      out = inflateRawSync(data, {
        windowBits: zlibBits(this.#inflateBits),
        finishFlush: constants.Z_SYNC_FLUSH,
        maxOutputLength: Math.max(1, Math.min(limit, kMaxLength)),
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw (this.#inflateError = e.code === 'ERR_BUFFER_TOO_LARGE' ? tooBig(limit) : invalidData(e));
    }
    if (out.length > limit) throw (this.#inflateError = tooBig(limit));
    return out;
  }

  /** close releases zlib memory; pending callbacks are dropped, never called. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#compressQueue.length = 0;
    this.#decompressQueue.length = 0;
    this.#deflateChunks.length = 0;
    this.#inflateChunks.length = 0;
    this.#deflate?.destroy();
    this.#deflate = null;
    this.#inflate?.destroy();
    this.#inflate = null;
    this.#deflateContext?.close();
    this.#deflateContext = null;
    this.#inflateContext?.close();
    this.#inflateContext = null;
  }

  // --- compress -------------------------------------------------------------------------------

  #startCompress(): void {
    const job = this.#compressQueue[0]!;
    if (this.#deflateError !== null || job.data.length === 0) {
      process.nextTick(this.#onDeflated, null);
      return;
    }
    this.#deflate ??= this.#createDeflate();
    if (this.#deflateStale) {
      this.#deflateStale = false;
      this.#deflate.reset(); // restartDeflate; nothing of ours is in flight between jobs
    }
    // The stream's flush mode is Z_SYNC_FLUSH, so one write yields the whole message (§7.2.1).
    this.#deflate.write(job.data, this.#onDeflated);
  }

  #createDeflate(): DeflateRaw {
    const stream = createDeflateRaw({
      windowBits: zlibBits(this.#deflateBits),
      level: this.#level,
      memLevel: this.#memLevel,
      flush: constants.Z_SYNC_FLUSH,
    });
    stream.on('data', this.#onDeflateData);
    stream.on('error', this.#onDeflateError);
    return stream;
  }

  readonly #onDeflateData = (chunk: Buffer): void => {
    this.#deflateChunks.push(chunk);
    this.#deflateLength += chunk.length;
  };

  readonly #onDeflateError = (err: Error): void => {
    if (this.#closed || this.#deflateError !== null) return;
    this.#deflateError = err;
    this.#deflate = null;
    const jobs = this.#compressQueue.splice(0);
    for (const job of jobs) job.cb(err);
  };

  readonly #onDeflated = (err?: Error | null): void => {
    if (this.#closed) return;
    if (err) {
      this.#onDeflateError(this.#deflate?.errored ?? err);
      return;
    }
    const job = this.#compressQueue.shift();
    if (job === undefined) return; // the queue was failed by an 'error' event already
    let result: Error | Buffer;
    if (this.#deflateError !== null) result = this.#deflateError;
    else if (job.data.length === 0) result = emptyMessage();
    else {
      const out = concat(this.#deflateChunks, this.#deflateLength);
      this.#deflateChunks.length = 0;
      this.#deflateLength = 0;
      try {
        result = stripTrailer(out);
      } catch (e) {
        result = e as Error;
      }
      // §7.1.1: without context takeover each message starts from an empty window.
      if (this.#deflateNoContext) this.#deflate?.reset();
    }
    if (this.#compressQueue.length > 0) this.#startCompress();
    if (result instanceof Error) job.cb(result);
    else job.cb(null, result);
  };

  // --- decompress -----------------------------------------------------------------------------

  #startDecompress(): void {
    const job = this.#decompressQueue[0]!;
    // A peer may end a message with a BFINAL block (§7.2.3.3); zlib then stops at the end of the
    // stream and ignores the rest of the message, trailer included.
    if (this.#inflateEnded) {
      process.nextTick(this.#onInflated, null);
      return;
    }
    const stream = (this.#inflate ??= this.#createInflate());
    const { data, fin } = job;
    if (fin) {
      if (data.length > 0) stream.write(data);
      stream.write(TRAILER, this.#onInflated); // §7.2.2
      this.#inflateWritten += data.length + TRAILER.length;
    } else if (data.length > 0) {
      stream.write(data, this.#onInflated);
      this.#inflateWritten += data.length;
    } else {
      process.nextTick(this.#onInflated, null);
    }
  }

  #createInflate(): InflateRaw {
    const stream = createInflateRaw({ windowBits: zlibBits(this.#inflateBits) });
    stream.on('data', this.#onInflateData);
    stream.on('error', this.#onInflateError);
    this.#inflateWritten = 0;
    this.#inflateEnded = false;
    return stream;
  }

  readonly #onInflateData = (chunk: Buffer): void => {
    if (this.#closed || this.#inflateError !== null) return;
    this.#messageLength += chunk.length;
    if (this.#messageLength > this.maxMessageSize) {
      // Destroying inside 'data' stops zlib before its next output chunk: a bomb is never
      // inflated (or buffered) much past the limit.
      this.#failInflate(tooBig(this.maxMessageSize));
      return;
    }
    this.#inflateChunks.push(chunk);
    this.#frameLength += chunk.length;
  };

  readonly #onInflateError = (err: Error): void => {
    if (this.#closed || this.#inflateError !== null) return;
    this.#failInflate(invalidData(err));
  };

  #failInflate(err: ProtocolError): void {
    this.#inflateError = err;
    const stream = this.#inflate;
    this.#inflate = null;
    stream?.destroy();
    this.#inflateChunks.length = 0;
    this.#frameLength = 0;
    const jobs = this.#decompressQueue.splice(0);
    for (const job of jobs) job.cb(err);
  }

  readonly #onInflated = (err?: Error | null): void => {
    // After a failure the queue is empty and late callbacks of the destroyed stream are ignored.
    if (this.#closed || this.#inflateError !== null) return;
    if (err) {
      // zlib's own error (kept as stream.errored) says more than the write callback's.
      this.#onInflateError(this.#inflate?.errored ?? err);
      return;
    }
    const job = this.#decompressQueue.shift();
    if (job === undefined) return;
    const out = concat(this.#inflateChunks, this.#frameLength);
    this.#inflateChunks.length = 0;
    this.#frameLength = 0;
    const stream = this.#inflate;
    if (stream !== null && stream.bytesWritten < this.#inflateWritten) this.#inflateEnded = true;
    if (job.fin) {
      this.#messageLength = 0;
      if (this.#inflateEnded) {
        // The peer ended the DEFLATE stream; its next message starts a fresh one.
        stream?.destroy();
        this.#inflate = null;
        this.#inflateEnded = false;
      } else if (this.#inflateNoContext) {
        stream?.reset(); // §7.1.1: the peer starts every message from an empty window
      }
    }
    if (this.#decompressQueue.length > 0) this.#startDecompress();
    job.cb(null, out);
  };
}

const tooBig = (limit: number): ProtocolError =>
  new ProtocolError('WS_ERR_MESSAGE_TOO_BIG', 1009, `Inflated message exceeds ${limit} bytes`);
