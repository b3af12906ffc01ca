/**
 * Opening a load-generator connection: a raw `net` (or `tls`) socket, the RFC 6455 §4.1 request
 * from the shared handshake module written straight onto it, the response head read off it and
 * checked, and permessage-deflate set up when the server accepted the offer. No node:http: one
 * socket and one small buffer per handshake, so tens of thousands of them stay cheap.
 */
import { isIP, connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import type { ClientHttp2Stream } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions } from 'node:tls';
import { http2Sessions } from '../../src/client/http2-sessions.ts';
import type { FrameTransport } from '../../src/runtime/frame-transport.ts';
import { extendedConnectRequest, validateExtendedConnectResponse } from '../../src/shared/extended-connect.ts';
import { parseExtensionHeader } from '../../src/shared/extension-header.ts';
import { buildUpgradeRequest, generateKey, validateUpgradeResponse } from '../../src/shared/handshake.ts';
import { messageCompression } from '../../src/shared/message-compression.ts';
import type { MessageCompression } from '../../src/shared/message-compression.ts';
import type { DeflateOfferOptions } from '../../src/shared/permessage-deflate.ts';
import { PerMessageDeflate, acceptDeflateResponse, buildDeflateOffer } from '../../src/shared/permessage-deflate.ts';

export interface Target {
  readonly url: string;
  readonly secure: boolean;
  /** Address to connect to (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Request target: path and query. */
  readonly path: string;
  /** Host header: host, plus the port when it is not the scheme's default. */
  readonly hostHeader: string;
}

/** Parses a ws:// or wss:// URL (http:// and https:// are taken as their WebSocket twins). */
export function parseTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RangeError(`not a URL: "${url}"`);
  }
  const scheme = parsed.protocol === 'http:' ? 'ws:' : parsed.protocol === 'https:' ? 'wss:' : parsed.protocol;
  if (scheme !== 'ws:' && scheme !== 'wss:') throw new RangeError(`the URL must be ws:// or wss://, got ${parsed.protocol}//`);
  const secure = scheme === 'wss:';
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return {
    url: parsed.href,
    secure,
    host,
    port: parsed.port === '' ? (secure ? 443 : 80) : Number(parsed.port),
    path: (parsed.pathname || '/') + parsed.search,
    hostHeader: parsed.host,
  };
}

export interface HandshakeOptions {
  /** Offer permessage-deflate. */
  readonly deflate: boolean;
  /** No handshake at all: the peer is a raw TCP echo (see the --raw-echo help). */
  readonly rawEcho: boolean;
  /** Milliseconds for connect + handshake. */
  readonly timeout: number;
  /** Accept any TLS certificate. */
  readonly insecure: boolean;
  /** An extended CONNECT on the thread's HTTP/2 connection to the origin (RFC 8441), not a socket of its own. */
  readonly http2: boolean;
  readonly headers: Readonly<Record<string, string>>;
  /** Largest message accepted, after inflation. */
  readonly maxMessageSize: number;
}

/**
 * Where a connection's reads go. Every socket of a thread reads into one buffer (net's `onread`):
 * no Buffer is allocated per read, and a chunk is valid only while its handler runs.
 */
export interface ReadTarget {
  handle: (chunk: Buffer) => void;
}

export interface OpenedSocket {
  /** A socket, or with `http2` a stream (runtime/frame-transport.ts). */
  readonly socket: FrameTransport;
  /** Set `handle` to receive the socket's reads from now on (each valid only during the call). */
  readonly reads: ReadTarget;
  readonly compression: MessageCompression | null;
  /** Bytes that followed the response head: the first frames. */
  readonly head: Buffer;
}

const MAX_RESPONSE_HEAD = 16 * 1024;
/** The thread's one read buffer (64 KiB: what a read asks the kernel for anyway). */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);
/** RFC 9113 §7: a stream given up on is reset with CANCEL. */
const NGHTTP2_CANCEL = 0x8;

/**
 * The offer asks for client_no_context_takeover: each of our messages is compressed on its own,
 * synchronously, so compression costs the generator one deflateRawSync per message and no
 * zlib stream per connection. The server keeps whatever context it chooses for its direction.
 */
const DEFLATE_OFFER: DeflateOfferOptions = { clientMaxWindowBits: true, clientNoContextTakeover: true };
const DEFLATE_OFFER_HEADER = buildDeflateOffer(DEFLATE_OFFER);

/** Opens one connection and completes the opening handshake; rejects with a one-line reason. */
export function openSocket(target: Target, options: HandshakeOptions): Promise<OpenedSocket> {
  if (options.http2) return openStream(target, options);
  return new Promise<OpenedSocket>((resolve, reject) => {
    const reads: ReadTarget = { handle: () => {} };
    const onread = {
      buffer: READ_BUFFER,
      callback: (n: number, buffer: Uint8Array): boolean => {
        reads.handle((buffer as Buffer).subarray(0, n));
        return true;
      },
    };
    const socket: Socket = target.secure
      ? // tls.connect takes onread too (Node's docs); its type declarations leave it out.
        tlsConnect({ host: target.host, port: target.port, servername: isIP(target.host) === 0 ? target.host : undefined, rejectUnauthorized: !options.insecure, onread } as ConnectionOptions)
      : netConnect({ host: target.host, port: target.port, onread });
    socket.setNoDelay(true);
    const key = options.rawEcho ? '' : generateKey();
    let received: Buffer = EMPTY;
    let settled = false;

    const finish = (error: Error | null, result?: OpenedSocket): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onClose);
      reads.handle = () => {};
      if (error !== null) {
        socket.destroy();
        reject(error);
      } else {
        resolve(result!);
      }
    };
    const onError = (error: Error): void => finish(new Error(`connect failed: ${error.message}`));
    const onClose = (): void => finish(new Error('connection closed during the opening handshake'));
    const onData = (chunk: Buffer): void => {
      // The chunk lives in the shared read buffer: keep a copy.
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf(HEAD_END);
      if (end < 0) {
        if (received.length > MAX_RESPONSE_HEAD) finish(new Error('the handshake response head is larger than 16 KiB'));
        return;
      }
      try {
        const compression = readResponse(received.toString('latin1', 0, end), key, options);
        finish(null, { socket, reads, compression, head: received.subarray(end + HEAD_END.length) });
      } catch (error) {
        finish(error as Error);
      }
    };
    const timer = setTimeout(() => finish(new Error(`no handshake within ${options.timeout} ms`)), options.timeout);

    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once(target.secure ? 'secureConnect' : 'connect', () => {
      if (options.rawEcho) {
        finish(null, { socket, reads, compression: null, head: EMPTY });
        return;
      }
      reads.handle = onData;
      socket.write(
        buildUpgradeRequest({
          host: target.hostHeader,
          path: target.path,
          key,
          extensions: options.deflate ? DEFLATE_OFFER_HEADER : undefined,
          headers: options.headers,
        }),
        'latin1',
      );
    });
  });
}

/** Checks the response head (RFC 6455 §4.1) and returns the negotiated compression, if any. */
function readResponse(head: string, key: string, options: HandshakeOptions): MessageCompression | null {
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (status === null) throw new Error(`not an HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const statusCode = Number(status[1]);
  if (statusCode !== 101) throw new Error(`server answered the upgrade with ${lines[0]!.slice(9, 80)}`);
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed response header line: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const info = validateUpgradeResponse({ statusCode, headers }, { key, protocols: [] });
  return negotiated(info.extensionsHeader, options);
}

/** The server's answer to our deflate offer, or null when it took none. */
function negotiated(extensionsHeader: string | undefined, options: HandshakeOptions): MessageCompression | null {
  if (extensionsHeader === undefined) return null;
  if (!options.deflate) throw new Error('server sent Sec-WebSocket-Extensions that were not offered');
  const params = acceptDeflateResponse(parseExtensionHeader(extensionsHeader), DEFLATE_OFFER);
  const codec = new PerMessageDeflate('client', params, { maxMessageSize: options.maxMessageSize, threshold: 0 });
  return messageCompression(codec);
}

/**
 * RFC 8441: an extended CONNECT on the thread's HTTP/2 connection to the origin, opened (and
 * reused) by the client's own pool (src/client/http2-sessions.ts); the stream is the socket.
 * Its reads arrive as 'data' events, handed to `reads` like a socket's.
 */
function openStream(target: Target, options: HandshakeOptions): Promise<OpenedSocket> {
  return new Promise<OpenedSocket>((resolve, reject) => {
    const reads: ReadTarget = { handle: () => {} };
    let stream: ClientHttp2Stream | null = null;
    let settled = false;
    const finish = (error: Error | null, result?: OpenedSocket): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      pending.abort();
      if (error === null) {
        resolve(result!);
        return;
      }
      if (stream !== null && !stream.closed) stream.close(NGHTTP2_CANCEL);
      reject(error);
    };
    const timer = setTimeout(() => finish(new Error(`no handshake within ${options.timeout} ms`)), options.timeout);
    const url = new URL(target.url);
    const pending = http2Sessions.session(url, { rejectUnauthorized: !options.insecure }, (error, session) => {
      if (error !== null) {
        finish(new Error(`connect failed: ${error.message}`));
        return;
      }
      if (settled) return;
      const opened = session!.request(
        extendedConnectRequest({ authority: target.hostHeader, path: target.path, extensions: options.deflate ? DEFLATE_OFFER_HEADER : undefined, headers: options.headers }),
        { endStream: false },
      );
      stream = opened;
      http2Sessions.opened(session!, opened);
      opened.on('error', (streamError: Error) => finish(new Error(`stream error: ${streamError.message}`)));
      opened.once('close', () => finish(new Error(`stream reset during the opening handshake (HTTP/2 error code ${opened.rstCode ?? 0})`)));
      opened.once('response', (headers) => {
        try {
          const info = validateExtendedConnectResponse(headers, []);
          const compression = negotiated(info.extensionsHeader, options);
          opened.on('data', (chunk: Buffer) => reads.handle(chunk));
          finish(null, { socket: opened, reads, compression, head: EMPTY });
        } catch (failure) {
          finish(failure as Error);
        }
      });
    });
  });
}
