/**
 * The events a client WebSocket dispatches. `open`, `message`, `error` and `close` are the
 * browser's (WHATWG WebSockets); `ping`, `pong`, `redirect` and `reconnect`, and the extra fields
 * on `open` and `close`, are Node extensions in the spirit of ws.
 */

export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'blob';

/** What `message` carries: text as a string, binary as `binaryType` says. */
export type MessageData = string | Buffer | ArrayBuffer | Blob;

/** `open`: a connection is ready. After a reconnection, `reconnected` is true. */
export class OpenEvent extends Event {
  /** The connection follows an earlier one that was lost (opt-in `reconnect`). */
  readonly reconnected: boolean;
  /** Reconnection attempts this connection took (1 for the first try); 0 for the first connection. */
  readonly attempt: number;
  constructor(attempt: number, reconnected: boolean) {
    super('open');
    this.attempt = attempt;
    this.reconnected = reconnected;
  }
}

export class MessageEvent extends Event {
  readonly data: MessageData;
  constructor(data: MessageData) {
    super('message');
    this.data = data;
  }
}

export class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  /** A reconnection is scheduled: a `reconnect` event follows, then `open` or another `close`. */
  readonly willReconnect: boolean;
  constructor(code: number, reason: string, wasClean: boolean, willReconnect = false) {
    super('close');
    this.code = code;
    this.reason = reason;
    this.wasClean = wasClean;
    this.willReconnect = willReconnect;
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

/** `ping` (the server pinged; the pong is sent automatically) and `pong` (an answer to `ping()`, or unsolicited). */
export class HeartbeatEvent extends Event {
  /** The control frame's payload, 0–125 bytes. */
  readonly data: Buffer;
  constructor(type: 'ping' | 'pong', data: Buffer) {
    super(type);
    this.data = data;
  }
}

/** `redirect`: with `followRedirects`, the server's 3xx is being followed to `url`. */
export class RedirectEvent extends Event {
  readonly url: string;
  readonly status: number;
  constructor(url: string, status: number) {
    super('redirect');
    this.url = url;
    this.status = status;
  }
}

/** `reconnect`: a lost connection will be retried after `delay` seconds, as attempt `attempt`. */
export class ReconnectEvent extends Event {
  /** 1 for the first attempt after a connection was lost, counting up until one opens. */
  readonly attempt: number;
  /** Seconds until the attempt starts (backoff with jitter). */
  readonly delay: number;
  constructor(attempt: number, delay: number) {
    super('reconnect');
    this.attempt = attempt;
    this.delay = delay;
  }
}

/** Every event a client WebSocket dispatches, by type (for typed `addEventListener`). */
export interface WebSocketEventMap {
  open: OpenEvent;
  message: MessageEvent;
  error: ErrorEvent;
  close: CloseEvent;
  ping: HeartbeatEvent;
  pong: HeartbeatEvent;
  redirect: RedirectEvent;
  reconnect: ReconnectEvent;
}
