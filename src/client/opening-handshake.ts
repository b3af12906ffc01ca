/**
 * The client's opening handshake (RFC 6455 §4.1): the upgrade request written by node:http over
 * the transport (direct, proxy tunnel, or the caller's agent), the 101 checked, permessage-deflate
 * negotiated (RFC 7692 §7.1), and 3xx answers followed when asked to. One handshake per
 * connection attempt; it reports exactly once, never from start() itself.
 */
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HandshakeError } from '../shared/errors.ts';
import { parseExtensionHeader } from '../shared/extension-header.ts';
import { extendedConnectRequest, validateExtendedConnectResponse } from '../shared/extended-connect.ts';
import { generateKey, upgradeRequestFields, validateUpgradeResponse } from '../shared/handshake.ts';
import { messageCompression } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { PerMessageDeflate, acceptDeflateResponse } from '../shared/permessage-deflate.ts';
import { UnexpectedResponseError } from './client-errors.ts';
import type { ResolvedClientOptions } from './client-options.ts';
import { http2Sessions } from './http2-sessions.ts';
import { headersFor, redirectTarget } from './redirect.ts';
import { endpointOf, openTransport } from './transport.ts';
import type { PendingTransport } from './transport.ts';

/** A completed handshake: the socket, what followed the 101, and what was negotiated. */
export interface Upgraded {
  readonly socket: Duplex;
  /** Bytes that came with the 101: the server's first frames. */
  readonly head: Buffer;
  /** The URL that answered 101 (after redirects). */
  readonly url: URL;
  readonly protocol: string;
  readonly extensions: string;
  readonly compression: MessageCompression | null;
}

/** What a handshake reports to its owner: one table per kind of owner, no closures per handshake. */
export interface HandshakeEvents<O> {
  upgraded(owner: O, result: Upgraded): void;
  /** A 3xx is being followed to `url`; the owner may abort() here. */
  redirected(owner: O, url: URL, status: number): void;
  failed(owner: O, error: Error): void;
}

const EMPTY = Buffer.alloc(0);
/** RFC 9113 §7: a stream we give up on is reset with CANCEL. */
const NGHTTP2_CANCEL = 0x8;

export class OpeningHandshake<O> {
  readonly #original: URL;
  readonly #protocols: readonly string[];
  readonly #options: ResolvedClientOptions;
  readonly #events: HandshakeEvents<O>;
  readonly #owner: O;
  #request: ClientRequest | null = null;
  /** The extended CONNECT's stream until it is answered (http2). */
  #stream: ClientHttp2Stream | null = null;
  #transport: PendingTransport | null = null;
  #timer: NodeJS.Timeout | null = null;
  #redirects = 0;
  #done = false;

  constructor(url: URL, protocols: readonly string[], options: ResolvedClientOptions, events: HandshakeEvents<O>, owner: O) {
    this.#original = url;
    this.#protocols = protocols;
    this.#options = options;
    this.#events = events;
    this.#owner = owner;
  }

  start(): void {
    const seconds = this.#options.handshakeTimeout;
    if (seconds > 0) {
      this.#timer = setTimeout(() => this.#fail(new Error(`opening handshake timed out after ${seconds} s`)), seconds * 1000);
    }
    try {
      this.#send(this.#original);
    } catch (error) {
      // Whatever throws here must reach the owner as an event, after the caller returns (as a browser's would).
      setImmediate(() => this.#fail(error as Error));
    }
  }

  /** Stops the handshake and destroys what it opened; nothing is reported afterwards. */
  abort(): void {
    this.#finish();
  }

  #send(url: URL): void {
    const options = this.#options;
    if (options.http2) {
      this.#sendExtendedConnect(url);
      return;
    }
    const key = generateKey();
    const path = url.pathname + url.search;
    const headers = upgradeRequestFields({
      host: url.host,
      path,
      key,
      protocols: this.#protocols,
      extensions: options.deflate?.header,
      origin: options.origin,
      headers: headersFor(options.headers, this.#original, url),
    });
    const target = endpointOf(url);
    let req: ClientRequest;
    if (options.agent !== null) {
      // The agent connects (and picks the TLS server name); the TLS options are handed to it.
      const args = { agent: options.agent, host: target.host, port: target.port, path, headers, setHost: false };
      req = target.secure ? httpsRequest({ ...options.tls, ...args }) : httpRequest(args);
    } else {
      req = httpRequest({
        path,
        headers,
        setHost: false,
        createConnection: (_args, created) => {
          this.#transport = openTransport(target, options, (error, socket) => created(error, socket as Duplex));
          return undefined;
        },
      });
    }
    this.#request = req;
    // A request left behind by a redirect may still report its end: only the current one counts.
    req.on('error', (error) => {
      if (req === this.#request) this.#fail(error);
    });
    req.on('response', (res: IncomingMessage) => this.#onResponse(url, res));
    req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(url, key, res, socket, head));
    req.end();
  }

  /** RFC 8441: an extended CONNECT on a stream of the origin's shared HTTP/2 connection. */
  #sendExtendedConnect(url: URL): void {
    if (url.protocol !== 'wss:') throw new TypeError('option http2 needs a wss: URL: HTTP/2 is reached by ALPN during TLS');
    const fields = extendedConnectRequest({
      authority: url.host,
      path: url.pathname + url.search,
      protocols: this.#protocols,
      extensions: this.#options.deflate?.header,
      origin: this.#options.origin,
      headers: headersFor(this.#options.headers, this.#original, url),
    });
    this.#transport = http2Sessions.session(url, this.#options.tls, (error, session) => {
      this.#transport = null;
      if (error !== null) {
        this.#fail(error);
        return;
      }
      let stream: ClientHttp2Stream;
      try {
        stream = session!.request(fields, { endStream: false });
      } catch (error) {
        this.#fail(error as Error);
        return;
      }
      this.#stream = stream;
      http2Sessions.opened(session!, stream);
      stream.on('error', (error) => {
        if (stream === this.#stream) this.#fail(error);
      });
      stream.once('close', () => {
        if (stream === this.#stream) this.#fail(new Error(`the server reset the CONNECT stream (HTTP/2 error code ${stream.rstCode ?? 0})`));
      });
      stream.once('response', (headers: IncomingHttpHeaders) => this.#onConnectResponse(url, stream, headers));
    });
  }

  #onConnectResponse(url: URL, stream: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
    const status = Number(headers[':status']);
    if (!(status >= 200 && status <= 299)) {
      // RFC 8441 has no redirects of its own: any other answer fails the attempt.
      this.#fail(new UnexpectedResponseError(status, '', headers, false));
      return;
    }
    // The stream is the connection's now: finishing the handshake must not reset it.
    this.#stream = null;
    let result: Upgraded;
    try {
      const info = validateExtendedConnectResponse(headers, this.#protocols);
      const compression = this.#negotiated(info.extensionsHeader);
      result = { socket: stream, head: EMPTY, url, protocol: info.protocol, extensions: compression === null ? '' : info.extensionsHeader!, compression };
    } catch (error) {
      stream.close(NGHTTP2_CANCEL);
      this.#fail(error as Error);
      return;
    }
    this.#finish();
    this.#events.upgraded(this.#owner, result);
  }

  /** RFC 7692 §7.1: the server's answer to our deflate offer, or null when it took none. */
  #negotiated(extensionsHeader: string | undefined): MessageCompression | null {
    if (extensionsHeader === undefined) return null;
    const deflate = this.#options.deflate;
    // RFC 6455 §4.1 (5): an extension we did not offer fails the connection.
    if (deflate === null) throw new HandshakeError(400, 'WebSocket handshake failed: the server sent Sec-WebSocket-Extensions that were not offered');
    const params = acceptDeflateResponse(parseExtensionHeader(extensionsHeader), deflate.offer);
    const codec = new PerMessageDeflate('client', params, {
      maxMessageSize: this.#options.maxPayloadLength,
      threshold: deflate.threshold,
      level: deflate.level,
      memLevel: deflate.memLevel,
    });
    return messageCompression(codec);
  }

  #onResponse(url: URL, res: IncomingMessage): void {
    res.resume();
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!this.#options.followRedirects || status < 300 || status > 399 || location === undefined) {
      this.#fail(new UnexpectedResponseError(status, res.statusMessage ?? '', res.headers, false));
      return;
    }
    if (++this.#redirects > this.#options.maxRedirects) {
      this.#fail(new Error(`more than ${this.#options.maxRedirects} redirects (maxRedirects)`));
      return;
    }
    this.#closeHop();
    try {
      const next = redirectTarget(location, url);
      this.#events.redirected(this.#owner, next, status);
      if (!this.#done) this.#send(next);
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #onUpgrade(url: URL, key: string, res: IncomingMessage, socket: Socket, head: Buffer): void {
    // The socket is the connection's now: finishing the handshake must not destroy it.
    this.#request = null;
    this.#transport = null;
    if (this.#done) {
      socket.destroy();
      return;
    }
    let result: Upgraded;
    try {
      const info = validateUpgradeResponse(res, { key, protocols: this.#protocols });
      const compression = this.#negotiated(info.extensionsHeader);
      result = { socket, head, url, protocol: info.protocol, extensions: compression === null ? '' : info.extensionsHeader!, compression };
    } catch (error) {
      socket.destroy();
      this.#fail(error as Error);
      return;
    }
    this.#finish();
    this.#events.upgraded(this.#owner, result);
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#finish();
    this.#events.failed(this.#owner, error);
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#closeHop();
  }

  /** Destroys the current request and whatever its transport made so far. */
  #closeHop(): void {
    this.#transport?.abort();
    this.#transport = null;
    const stream = this.#stream;
    this.#stream = null;
    if (stream !== null && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.#request?.destroy();
    this.#request = null;
  }
}
