import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import { CloseCode, encodeClosePayload } from '../shared/close.ts';
import type { ProtocolError } from '../shared/errors.ts';
import { parseExtensionHeader } from '../shared/extension-header.ts';
import { ByteArena } from '../shared/frame-writer.ts';
import { generateKey, validateUpgradeResponse } from '../shared/handshake.ts';
import { MaskKeySource } from '../shared/mask.ts';
import { compressionWanted, messageCompression } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { MessageEncoder } from '../shared/message-encoder.ts';
import type { EncoderOps } from '../shared/message-encoder.ts';
import { MessageReader } from '../shared/message-reader.ts';
import type { MessageEvents } from '../shared/message-reader.ts';
import { Opcode } from '../shared/opcodes.ts';
import type { DeflateOfferOptions } from '../shared/permessage-deflate.ts';
import { DEFAULT_THRESHOLD, PerMessageDeflate, acceptDeflateResponse, buildDeflateOffer } from '../shared/permessage-deflate.ts';
import { parseSubprotocolHeader } from '../shared/subprotocol-header.ts';
import { FlushScheduler, FrameSink } from '../runtime/frame-flush.ts';

export type BinaryType = 'nodebuffer' | 'arraybuffer';

export interface ClientOptions {
  /** Offer permessage-deflate (default true); an object tunes the offer. */
  readonly perMessageDeflate?: boolean | (DeflateOfferOptions & { readonly threshold?: number; readonly level?: number });
  /** Seconds for the TCP/TLS connect and the opening handshake (default 10). */
  readonly handshakeTimeout?: number;
  /** Largest message accepted, after inflation (default 16 MiB; 1009 past it). */
  readonly maxPayloadLength?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly origin?: string;
  /** TLS options for wss:// (CA, client certificate and key, SNI servername, rejectUnauthorized). */
  readonly tls?: SecureContextOptions & { readonly servername?: string; readonly rejectUnauthorized?: boolean };
  /** Seconds to wait for the server to close TCP after the close handshake (default 10). */
  readonly closeTimeout?: number;
}

export class MessageEvent extends Event {
  readonly data: string | Buffer | ArrayBuffer;
  constructor(data: string | Buffer | ArrayBuffer) {
    super('message');
    this.data = data;
  }
}

export class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(code: number, reason: string, wasClean: boolean) {
    super('close');
    this.code = code;
    this.reason = reason;
    this.wasClean = wasClean;
  }
}

export class ErrorEvent extends Event {
  readonly error: Error;
  readonly message: string;
  constructor(error: Error) {
    super('error');
    this.error = error;
    this.message = error.message;
  }
}

/** Every client of a thread packs its frames into one arena and flushes once per tick. */
const arena = new ByteArena();
const maskKeys = new MaskKeySource();
const scheduler = new FlushScheduler();

/** Largest message accepted by default, after inflation (1009 past it). */
const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;

type Handler<E extends Event> = ((event: E) => void) | null;

const EMPTY = Buffer.alloc(0);

/**
 * WebSocket is a client with the browser's API (`onopen`/`onmessage`/`onclose`/`onerror`,
 * `addEventListener`, `readyState`, `binaryType`, `bufferedAmount`, `send`, `close`), built on
 * the same core as the server: masked frames (RFC 6455 §5.3) batched into one write per tick.
 */
export class WebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;

  readonly url: string;
  protocol = '';
  extensions = '';
  binaryType: BinaryType = 'nodebuffer';
  onopen: Handler<Event> = null;
  onmessage: Handler<MessageEvent> = null;
  onclose: Handler<CloseEvent> = null;
  onerror: Handler<ErrorEvent> = null;

  #readyState: 0 | 1 | 2 | 3 = 0;
  #socket: Duplex | null = null;
  #reader: MessageReader<WebSocket> | null = null;
  readonly #sink = new FrameSink(arena, maskKeys, scheduler, null, null, null);
  #compression: MessageCompression | null = null;
  /** Present when permessage-deflate was negotiated. */
  #encoder: MessageEncoder<WebSocket> | null = null;
  /** Messages sent while an earlier one compresses off-thread: they keep their order. */
  readonly #pending: { payload: Buffer; opcode: Opcode; compress: boolean }[] = [];
  /** The server's FIN came while a message inflated: our side ends once it is processed. */
  #peerEnded = false;
  #closeSent = false;
  /** close() was called with messages still queued: the close frame follows them. */
  #closeAfterPending: Buffer | null = null;
  /** The upgrade request, until it is answered. */
  #request: ClientRequest | null = null;
  #closeReceived: { code: number; reason: string } | null = null;
  #closeTimer: NodeJS.Timeout | null = null;
  #errorEmitted = false;
  readonly #options: ClientOptions;

  constructor(url: string | URL, protocols: string | readonly string[] = [], options: ClientOptions = {}) {
    super();
    const parsed = new URL(url);
    if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
    if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new SyntaxError(`unsupported URL scheme ${parsed.protocol}`);
    if (parsed.hash !== '') throw new SyntaxError('a WebSocket URL has no fragment');
    this.url = parsed.href;
    this.#options = options;
    const offered = typeof protocols === 'string' ? [protocols] : [...protocols];
    if (offered.length > 0) parseSubprotocolHeader(offered.join(', ')); // throws on bad or repeated names
    this.#connect(parsed, offered);
  }

  get readyState(): 0 | 1 | 2 | 3 {
    return this.#readyState;
  }

  get bufferedAmount(): number {
    let pending = 0;
    for (const item of this.#pending) pending += item.payload.length;
    return this.#sink.pendingBytes + pending + (this.#socket?.writableLength ?? 0);
  }

  send(data: string | Buffer | ArrayBuffer | ArrayBufferView): void {
    if (this.#readyState === WebSocket.CONNECTING) throw new DOMException('WebSocket is still connecting', 'InvalidStateError');
    if (this.#readyState !== WebSocket.OPEN) return;
    const text = typeof data === 'string';
    const payload = text
      ? Buffer.from(data)
      : Buffer.isBuffer(data) ? data
      : data instanceof ArrayBuffer ? Buffer.from(data)
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const opcode = text ? Opcode.Text : Opcode.Binary;
    const compress = this.#compression !== null && compressionWanted(this.#compression.threshold, payload.length, undefined);
    if (this.#pending.length > 0 || this.#encoder?.busy === true) this.#pending.push({ payload, opcode, compress });
    else this.#sendNow(opcode, payload, compress);
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== CloseCode.Normal && (code < 3000 || code > 4999)) {
      throw new DOMException(`close code must be 1000 or 3000-4999, got ${code}`, 'InvalidAccessError');
    }
    if (this.#readyState === WebSocket.CLOSING || this.#readyState === WebSocket.CLOSED) return;
    const payload = encodeClosePayload(code ?? (reason ? CloseCode.Normal : undefined), reason ?? '');
    if (this.#readyState === WebSocket.CONNECTING) {
      this.#request?.destroy();
      this.#fail(new Error('WebSocket was closed before the connection was established'), CloseCode.Abnormal);
      return;
    }
    this.#readyState = WebSocket.CLOSING;
    // Messages sent before close() go out first (one may still be compressing), then the close.
    if (this.#pending.length > 0 || this.#encoder?.busy === true) this.#closeAfterPending = payload;
    else this.#sendClose(payload);
  }

  /** Destroys the connection without a close handshake. */
  terminate(): void {
    this.#socket?.destroy();
  }

  // ---- handshake ------------------------------------------------------------------------

  #connect(url: URL, protocols: string[]): void {
    const key = generateKey();
    const deflateOption = this.#options.perMessageDeflate ?? true;
    const offer: DeflateOfferOptions | null = deflateOption === false ? null : deflateOption === true ? { clientMaxWindowBits: true } : deflateOption;
    const headers: Record<string, string> = {
      ...this.#options.headers,
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Version': '13',
    };
    if (protocols.length > 0) headers['Sec-WebSocket-Protocol'] = protocols.join(', ');
    if (offer !== null) headers['Sec-WebSocket-Extensions'] = buildDeflateOffer(offer);
    if (this.#options.origin !== undefined) headers.Origin = this.#options.origin;
    const secure = url.protocol === 'wss:';
    const tls = this.#options.tls ?? {};
    const req = (this.#request = (secure ? httpsRequest : httpRequest)({
      host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: url.pathname + url.search,
      headers,
      agent: false,
      timeout: (this.#options.handshakeTimeout ?? 10) * 1000,
      ...(secure ? { ...tls, servername: tls.servername ?? (url.hostname.startsWith('[') ? undefined : url.hostname) } : {}),
    }));
    req.on('timeout', () => req.destroy(new Error('opening handshake timed out')));
    req.on('error', (error) => this.#fail(error, CloseCode.Abnormal));
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      req.destroy();
      this.#fail(new Error(`server answered the upgrade with ${res.statusCode} ${res.statusMessage ?? ''}`.trim()), CloseCode.Abnormal);
    });
    req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      req.setTimeout(0);
      this.#request = null;
      // close() during the handshake: the answer comes too late for anyone to use it.
      if (this.#readyState !== WebSocket.CONNECTING) {
        socket.destroy();
        return;
      }
      try {
        const info = validateUpgradeResponse(res, { key, protocols });
        let compression: MessageCompression | null = null;
        if (info.extensionsHeader !== undefined) {
          if (offer === null) throw new Error('server sent Sec-WebSocket-Extensions that were not offered');
          const params = acceptDeflateResponse(parseExtensionHeader(info.extensionsHeader), offer);
          const tuning = typeof deflateOption === 'object' ? deflateOption : {};
          const codec = new PerMessageDeflate('client', params, {
            maxMessageSize: this.#options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD,
            threshold: tuning.threshold ?? DEFAULT_THRESHOLD,
            level: tuning.level,
          });
          compression = messageCompression(codec);
          this.extensions = info.extensionsHeader;
        }
        this.protocol = info.protocol;
        this.#open(socket, compression, head);
      } catch (error) {
        socket.destroy();
        this.#fail(error as Error, CloseCode.Abnormal);
      }
    });
    req.end();
  }

  #open(socket: Duplex, compression: MessageCompression | null, head: Buffer): void {
    this.#socket = socket;
    this.#sink.attach(socket);
    this.#compression = compression;
    if (compression !== null) this.#encoder = new MessageEncoder(this.#sink, compression, WebSocket.#encoderOps, this, null);
    (socket as Socket).setNoDelay?.(true);
    const reader = new MessageReader(WebSocket.#readerEvents, this, {
      role: 'client',
      maxMessageSize: this.#options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD,
      inflater: compression?.inflater ?? null,
    });
    this.#reader = reader;
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('close', () => this.#onSocketClose());
    socket.on('error', (error: Error) => this.#emitError(error));
    // Frames that arrived with the server's FIN are still read (they may wait behind an
    // inflation); our side ends once they are.
    (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    socket.on('end', () => {
      if (reader.inflating) this.#peerEnded = true;
      else this.#endSocket();
    });
    this.#readyState = WebSocket.OPEN;
    this.#dispatch(new Event('open'), this.onopen);
    if (head.length > 0) reader.push(head);
  }

  static readonly #readerEvents: MessageEvents<WebSocket> = {
    message: (ws, data, isBinary) => ws.#onMessage(data, isBinary),
    ping(ws, payload) {
      if (ws.#readyState === WebSocket.OPEN) ws.#sink.frame(Opcode.Pong, payload, true, false);
    },
    pong() {},
    close: (ws, code, reason) => ws.#onCloseFrame(code, reason),
    error: (ws, error) => ws.#onProtocolError(error),
    readPressure(ws, stop) {
      if (stop) ws.#socket?.pause();
      else ws.#socket?.resume();
    },
    // The server's FIN came while a message inflated: end our side once it is processed.
    caughtUp(ws) {
      if (ws.#peerEnded) ws.#endSocket();
    },
  };

  // ---- receive --------------------------------------------------------------------------

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#readyState !== WebSocket.OPEN) return;
    const value = !isBinary
      ? data.toString('utf8')
      : this.binaryType === 'arraybuffer' ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer
      : data;
    this.#dispatch(new MessageEvent(value), this.onmessage);
  }

  #onCloseFrame(code: number, reason: string): void {
    this.#closeReceived = { code, reason };
    if (this.#readyState === WebSocket.OPEN) {
      this.#readyState = WebSocket.CLOSING;
      this.#sendClose(code === CloseCode.NoStatus ? EMPTY : encodeClosePayload(code));
    }
    // RFC 6455 §7.1.1: the server closes TCP first; we wait for it, within the close timeout.
    this.#startCloseTimer();
  }

  #onProtocolError(error: ProtocolError): void {
    this.#emitError(error);
    if (this.#readyState === WebSocket.OPEN || this.#readyState === WebSocket.CLOSING) {
      this.#readyState = WebSocket.CLOSING;
      this.#sendClose(encodeClosePayload(error.closeCode));
      this.#startCloseTimer();
    }
  }

  #onSocketClose(): void {
    if (this.#readyState === WebSocket.CLOSED) return;
    this.#readyState = WebSocket.CLOSED;
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer);
    this.#reader?.stop();
    this.#compression?.close();
    this.#pending.length = 0;
    this.#sink.take();
    const received = this.#closeReceived;
    const wasClean = received !== null && this.#closeSent;
    this.#dispatch(new CloseEvent(received?.code ?? CloseCode.Abnormal, received?.reason ?? '', wasClean), this.onclose);
  }

  // ---- send -----------------------------------------------------------------------------

  #sendNow(opcode: Opcode, payload: Buffer, compress: boolean): void {
    if (compress && this.#encoder !== null) this.#encoder.encode(opcode, payload);
    else this.#sink.frame(opcode, payload, true, false);
  }

  /** Sends the messages held behind a compression, then a close() that waited for them. */
  #pump(): void {
    while (this.#pending.length > 0 && this.#encoder?.busy !== true) {
      const item = this.#pending.shift()!;
      this.#sendNow(item.opcode, item.payload, item.compress);
    }
    if (this.#pending.length === 0 && this.#encoder?.busy !== true && this.#closeAfterPending !== null) {
      const payload = this.#closeAfterPending;
      this.#closeAfterPending = null;
      this.#sendClose(payload);
    }
  }

  static readonly #encoderOps: EncoderOps<WebSocket> = {
    acceptsData: (ws) => !ws.#closeSent,
    compressed(ws, error) {
      if (error !== null) {
        ws.#emitError(error);
        ws.#socket?.destroy();
        return;
      }
      ws.#pump();
    },
  };

  #sendClose(payload: Buffer): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#pending.length = 0;
    this.#sink.frame(Opcode.Close, payload, true, false);
    this.#startCloseTimer();
  }

  /** Ends our side after writing what this tick gathered (a close reply must precede the FIN). */
  #endSocket(): void {
    const socket = this.#socket;
    if (socket === null || socket.destroyed) return;
    this.#sink.flush();
    socket.end();
  }

  #startCloseTimer(): void {
    if (this.#closeTimer !== null) return;
    this.#closeTimer = setTimeout(() => this.#socket?.destroy(), (this.#options.closeTimeout ?? 10) * 1000);
    this.#closeTimer.unref();
  }

  // ---- events ---------------------------------------------------------------------------

  #fail(error: Error, code: number): void {
    if (this.#readyState === WebSocket.CLOSED) return;
    this.#emitError(error);
    this.#readyState = WebSocket.CLOSED;
    this.#dispatch(new CloseEvent(code, '', false), this.onclose);
  }

  #emitError(error: Error): void {
    if (this.#errorEmitted) return;
    this.#errorEmitted = true;
    this.#dispatch(new ErrorEvent(error), this.onerror);
  }

  #dispatch<E extends Event>(event: E, handler: Handler<E>): void {
    if (handler !== null) {
      try {
        handler.call(this, event);
      } catch (error) {
        process.nextTick(() => {
          throw error;
        });
      }
    }
    this.dispatchEvent(event);
  }
}
