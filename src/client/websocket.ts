/**
 * `shardws/client`: a WebSocket client with the browser's API (WHATWG WebSockets) on the same
 * core as the server, plus the Node options a browser has no use for (headers, TLS, proxy,
 * redirects) and opt-in reconnection. Like a browser, the constructor throws only for a bad URL
 * or subprotocol (and, as ws, for a bad option); everything that can go wrong with the
 * connection arrives as `error` then `close` events.
 */
import { CloseCode, MAX_CLOSE_REASON_BYTES, encodeClosePayload } from '../shared/close.ts';
import { Opcode } from '../shared/opcodes.ts';
import { isToken } from '../shared/subprotocol-header.ts';
import { ClientConnection } from './client-connection.ts';
import type { ConnectionEvents } from './client-connection.ts';
import { CloseEvent, ErrorEvent, HeartbeatEvent, MessageEvent, OpenEvent, ReconnectEvent, RedirectEvent } from './client-events.ts';
import type { BinaryType, MessageData, WebSocketEventMap } from './client-events.ts';
import { resolveClientOptions } from './client-options.ts';
import type { ClientOptions, ResolvedClientOptions } from './client-options.ts';
import { OpeningHandshake } from './opening-handshake.ts';
import type { HandshakeEvents, Upgraded } from './opening-handshake.ts';
import { isTransientDisconnect, reconnectDelay } from './reconnect-policy.ts';
import type { Disconnect } from './reconnect-policy.ts';

export type { BinaryType, MessageData, WebSocketEventMap } from './client-events.ts';
export { CloseEvent, ErrorEvent, HeartbeatEvent, MessageEvent, OpenEvent, ReconnectEvent, RedirectEvent } from './client-events.ts';
export type { ClientDeflateOptions, ClientOptions, ClientTlsOptions, ReconnectOptions } from './client-options.ts';
export { UnexpectedResponseError } from './client-errors.ts';
export type { Disconnect } from './reconnect-policy.ts';
export { isTransientDisconnect } from './reconnect-policy.ts';

type Handler<E extends Event> = ((event: E) => void) | null;
type Listener = Parameters<EventTarget['addEventListener']>[1];
type ListenOptions = Parameters<EventTarget['addEventListener']>[2];
type UnlistenOptions = Parameters<EventTarget['removeEventListener']>[2];

const BINARY_TYPES: ReadonlySet<string> = new Set<BinaryType>(['nodebuffer', 'arraybuffer', 'blob']);

/** A ping's payload is a control frame's: at most 125 bytes (RFC 6455 §5.5). */
const MAX_CONTROL_PAYLOAD = 125;

export class WebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly CONNECTING = 0;
  readonly OPEN = 1;
  readonly CLOSING = 2;
  readonly CLOSED = 3;

  onopen: Handler<OpenEvent> = null;
  onmessage: Handler<MessageEvent> = null;
  onclose: Handler<CloseEvent> = null;
  onerror: Handler<ErrorEvent> = null;

  /** The URL asked for (normalized: http(s) → ws(s)); reconnections start from it. */
  readonly #requested: URL;
  /** The URL of the current or last connection: the requested one, or where redirects led. */
  #url: URL;
  readonly #protocols: readonly string[];
  readonly #options: ResolvedClientOptions;
  #binaryType: BinaryType = 'nodebuffer';
  #protocol = '';
  #extensions = '';
  /** readyState while no connection exists: connecting (or waiting to reconnect), closing (close() while connecting: the events are due), closed. */
  #idleState: 0 | 2 | 3 = 0;
  #handshake: OpeningHandshake<WebSocket> | null = null;
  #connection: ClientConnection<WebSocket> | null = null;
  /** The first error of the current attempt or connection, reported just before its close (one per connection, as browsers). */
  #error: Error | null = null;
  /** close() or terminate() was called: no further reconnection. */
  #closedByUser = false;
  #reconnectTimer: NodeJS.Timeout | null = null;
  /** Reconnection attempts since the last connection opened. */
  #attempt = 0;
  /** Steps into the backoff; back to 0 once a connection stays up for minUptime. */
  #backoffStep = 0;
  /** performance.now() when the current or last connection opened. */
  #openedAt = 0;
  #everOpened = false;

  /**
   * Connects to `url` (ws:, wss:, or http:/https: taken as their WebSocket twins). `protocols`
   * may be left out: `new WebSocket(url, options)` as ws accepts. Throws a SyntaxError
   * DOMException for a bad URL or subprotocol list, TypeError or RangeError for a bad option.
   */
  constructor(url: string | URL, protocols?: string | readonly string[] | ClientOptions, options?: ClientOptions) {
    super();
    if (protocols !== undefined && typeof protocols === 'object' && !Array.isArray(protocols)) {
      options = protocols as ClientOptions;
      protocols = undefined;
    }
    this.#requested = parseWebSocketUrl(url);
    this.#url = this.#requested;
    this.#protocols = checkProtocols(protocols as string | readonly string[] | undefined);
    this.#options = resolveClientOptions(options ?? {});
    this.#dial();
  }

  /** The URL of the current (or last) connection: after redirects, where they led. */
  get url(): string {
    return this.#url.href;
  }

  /** The subprotocol the server chose, '' for none. */
  get protocol(): string {
    return this.#protocol;
  }

  /** The Sec-WebSocket-Extensions the server answered with, '' for none. */
  get extensions(): string {
    return this.#extensions;
  }

  get readyState(): 0 | 1 | 2 | 3 {
    return this.#connection?.state ?? this.#idleState;
  }

  /**
   * How binary messages arrive: 'nodebuffer' (the default, as ws), 'arraybuffer', or 'blob'
   * (the browser's default). Other values are ignored, as WebIDL has browsers do.
   */
  get binaryType(): BinaryType {
    return this.#binaryType;
  }

  set binaryType(type: BinaryType) {
    if (BINARY_TYPES.has(type)) this.#binaryType = type;
  }

  get bufferedAmount(): number {
    return this.#connection?.bufferedAmount ?? 0;
  }

  send(data: string | Buffer | ArrayBuffer | ArrayBufferView | Blob): void {
    if (this.readyState === WebSocket.CONNECTING) throw new DOMException('WebSocket is still connecting', 'InvalidStateError');
    const connection = this.#connection;
    if (connection === null || connection.state !== WebSocket.OPEN) return;
    if (typeof data === 'string') connection.send(Opcode.Text, Buffer.from(data));
    else if (data instanceof Blob) connection.sendBlob(data);
    else connection.send(Opcode.Binary, toBuffer(data));
  }

  /**
   * Sends a ping (a Node extension, as ws's `ping()`); the server's answer arrives as a `pong`
   * event. At most 125 bytes of data (RFC 6455 §5.5).
   */
  ping(data: string | Buffer | ArrayBuffer | ArrayBufferView = Buffer.alloc(0)): void {
    if (this.readyState === WebSocket.CONNECTING) throw new DOMException('WebSocket is still connecting', 'InvalidStateError');
    const payload = typeof data === 'string' ? Buffer.from(data) : toBuffer(data);
    if (payload.length > MAX_CONTROL_PAYLOAD) throw new RangeError(`a ping carries at most ${MAX_CONTROL_PAYLOAD} bytes, got ${payload.length}`);
    this.#connection?.ping(payload);
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== CloseCode.Normal && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new DOMException(`close code must be 1000 or 3000-4999, got ${code}`, 'InvalidAccessError');
    }
    if (reason !== undefined && Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) {
      throw new DOMException(`close reason must be at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8`, 'SyntaxError');
    }
    this.#closedByUser = true;
    if (this.#connection !== null) {
      this.#connection.close(encodeClosePayload(code ?? (reason ? CloseCode.Normal : undefined), reason ?? ''));
      return;
    }
    if (this.#idleState === WebSocket.CONNECTING) this.#abortConnecting();
  }

  /** Destroys the connection without a close handshake (as ws); while connecting, as close(). */
  terminate(): void {
    this.#closedByUser = true;
    if (this.#connection !== null) this.#connection.terminate();
    else if (this.#idleState === WebSocket.CONNECTING) this.#abortConnecting();
  }

  // Typed listeners for this client's events; any other type falls through to EventTarget's.
  override addEventListener<K extends keyof WebSocketEventMap>(type: K, listener: ((event: WebSocketEventMap[K]) => void) | null, options?: ListenOptions): void;
  override addEventListener(type: string, listener: Listener, options?: ListenOptions): void;
  override addEventListener(type: string, listener: unknown, options?: ListenOptions): void {
    super.addEventListener(type, listener as Listener, options);
  }

  override removeEventListener<K extends keyof WebSocketEventMap>(type: K, listener: ((event: WebSocketEventMap[K]) => void) | null, options?: UnlistenOptions): void;
  override removeEventListener(type: string, listener: Listener, options?: UnlistenOptions): void;
  override removeEventListener(type: string, listener: unknown, options?: UnlistenOptions): void {
    super.removeEventListener(type, listener as Listener, options);
  }

  // ---- connecting ---------------------------------------------------------------------------

  #dial(): void {
    this.#reconnectTimer = null;
    this.#idleState = WebSocket.CONNECTING;
    this.#url = this.#requested;
    this.#handshake = new OpeningHandshake(this.#requested, this.#protocols, this.#options, WebSocket.#handshakeEvents, this);
    this.#handshake.start();
  }

  /** close() or terminate() before a connection opened: the attempt (or the wait for one) ends. */
  #abortConnecting(): void {
    this.#handshake?.abort();
    this.#handshake = null;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    // As a browser: CLOSING now, then error and close 1006 after close() returns.
    this.#idleState = WebSocket.CLOSING;
    const error = new Error('WebSocket was closed before the connection was established');
    setImmediate(() => this.#ended(CloseCode.Abnormal, '', false, error));
  }

  static readonly #handshakeEvents: HandshakeEvents<WebSocket> = {
    upgraded: (ws, result) => ws.#opened(result),
    redirected(ws, url, status) {
      ws.#url = url;
      ws.#dispatch(new RedirectEvent(url.href, status), null);
    },
    failed(ws, error) {
      ws.#handshake = null;
      ws.#ended(CloseCode.Abnormal, '', false, error);
    },
  };

  #opened(result: Upgraded): void {
    this.#handshake = null;
    this.#url = result.url;
    this.#protocol = result.protocol;
    this.#extensions = result.extensions;
    const connection = new ClientConnection(result.socket, result.compression, this.#options, WebSocket.#connectionEvents, this);
    this.#connection = connection;
    const attempt = this.#attempt;
    const reconnected = this.#everOpened;
    this.#attempt = 0;
    this.#everOpened = true;
    this.#openedAt = performance.now();
    this.#dispatch(new OpenEvent(attempt, reconnected), this.onopen);
    connection.read(result.head);
  }

  // ---- an open connection -------------------------------------------------------------------

  static readonly #connectionEvents: ConnectionEvents<WebSocket> = {
    message: (ws, data, isBinary) => ws.#dispatch(new MessageEvent(isBinary ? ws.#binary(data) : data.toString('utf8')), ws.onmessage),
    ping: (ws, data) => ws.#dispatch(new HeartbeatEvent('ping', data), null),
    pong: (ws, data) => ws.#dispatch(new HeartbeatEvent('pong', data), null),
    error: (ws, error) => ws.#recordError(error),
    closed(ws, code, reason, wasClean) {
      ws.#connection = null;
      const uptime = (performance.now() - ws.#openedAt) / 1000;
      if (ws.#options.reconnect !== null && uptime >= ws.#options.reconnect.minUptime) ws.#backoffStep = 0;
      ws.#ended(code, reason, wasClean, null);
    },
  };

  #binary(data: Buffer): MessageData {
    switch (this.#binaryType) {
      case 'nodebuffer':
        return data;
      case 'arraybuffer':
        return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
      case 'blob':
        return new Blob([data as Uint8Array<ArrayBuffer>]);
    }
  }

  // ---- the end of a connection or an attempt, and what follows ---------------------------------

  /**
   * A connection closed or an attempt failed. As in browsers (WHATWG "the WebSocket connection
   * is closed"): readyState CLOSED, then `error` if the connection failed (once, with the first
   * cause), then `close`; with `reconnect`, a `reconnect` event and the next attempt after the backoff.
   */
  #ended(code: number, reason: string, wasClean: boolean, error: Error | null): void {
    if (error !== null) this.#recordError(error);
    this.#idleState = WebSocket.CLOSED;
    const failure = this.#error;
    this.#error = null;
    if (failure !== null) this.#dispatch(new ErrorEvent(failure), this.onerror);
    const disconnect: Disconnect = { code, reason, wasClean, error: failure };
    const willReconnect = this.#willReconnect(disconnect);
    this.#dispatch(new CloseEvent(code, reason, wasClean, willReconnect), this.onclose);
    // A close() from a close handler cancels the reconnection announced in the event.
    if (!willReconnect || this.#closedByUser) return;
    this.#attempt++;
    this.#backoffStep++;
    const delay = reconnectDelay(this.#backoffStep, this.#options.reconnect!);
    this.#idleState = WebSocket.CONNECTING;
    this.#reconnectTimer = setTimeout(() => this.#dial(), delay * 1000);
    this.#dispatch(new ReconnectEvent(this.#attempt, delay), null);
  }

  #willReconnect(disconnect: Disconnect): boolean {
    const policy = this.#options.reconnect;
    if (policy === null || this.#closedByUser || this.#attempt >= policy.maxRetries) return false;
    return (policy.shouldReconnect ?? isTransientDisconnect)(disconnect);
  }

  /** Keeps the first error of a connection (or attempt) for the `error` event its end brings. */
  #recordError(error: Error): void {
    if (this.#error === null) this.#error = error;
  }

  #dispatch<E extends Event>(event: E, handler: Handler<E>): void {
    if (handler !== null) {
      try {
        handler.call(this, event);
      } catch (error) {
        // As a browser reports a throwing handler without stopping the others.
        process.nextTick(() => {
          throw error;
        });
      }
    }
    this.dispatchEvent(event);
  }
}

/**
 * The WHATWG constructor's URL steps: parse, map http(s) to ws(s), refuse other schemes and
 * fragments, each as a SyntaxError DOMException.
 */
function parseWebSocketUrl(url: string | URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DOMException(`invalid URL: ${String(url)}`, 'SyntaxError');
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new DOMException(`unsupported URL scheme ${parsed.protocol}`, 'SyntaxError');
  if (parsed.hash !== '' || parsed.href.endsWith('#')) throw new DOMException('a WebSocket URL has no fragment', 'SyntaxError');
  return parsed;
}

/** RFC 6455 §4.1 (10): subprotocols are unique tokens; anything else is a SyntaxError (WHATWG). */
function checkProtocols(protocols: string | readonly string[] | undefined): readonly string[] {
  const list = protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : [...protocols];
  for (const p of list) {
    if (typeof p !== 'string' || !isToken(p)) throw new DOMException(`invalid subprotocol ${JSON.stringify(p)}: not a token`, 'SyntaxError');
  }
  if (new Set(list).size !== list.length) throw new DOMException('subprotocols must not repeat', 'SyntaxError');
  return list;
}

function toBuffer(data: Buffer | ArrayBuffer | ArrayBufferView): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
