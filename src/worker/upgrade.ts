import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { App, ResponseHeaders, Shard, UpgradeRequest } from '../shared/app.ts';
import { isRejection } from '../shared/app.ts';
import type { ServerConfig } from '../shared/config.ts';
import { HandshakeError } from '../shared/errors.ts';
import type { HandshakeStatus } from '../shared/errors.ts';
import { parseExtensionHeader } from '../shared/extension-header.ts';
import { buildErrorResponse, buildUpgradeResponse, validateUpgradeRequest } from '../shared/handshake.ts';
import { messageCompression } from '../shared/message-compression.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import { PerMessageDeflate, acceptDeflateOffer } from '../shared/permessage-deflate.ts';
import { refuse } from '../runtime/refuse.ts';
import { Counter } from '../shared/worker-counters.ts';

/**
 * An upgrade request as the handler reads it: from Node's HTTP parser (an IncomingMessage), or
 * read by the worker itself (request-head.ts), in which case `raw()` builds the IncomingMessage
 * an app may ask for, on first use.
 */
export interface HandshakeRequest {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string;
  raw(): IncomingMessage;
}

/** An IncomingMessage from Node's parser, as a HandshakeRequest. */
export function fromIncomingMessage(req: IncomingMessage): HandshakeRequest {
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    httpVersion: req.httpVersion,
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress ?? '',
    raw: () => req,
  };
}

export interface AcceptedUpgrade {
  readonly data: unknown;
  readonly protocol: string;
  readonly extensions: string;
  readonly compression: MessageCompression | null;
  readonly remoteAddress: string;
  /** The 101 response, for the caller to write once it counts the socket as a connection. */
  readonly response: string;
  /** The request as the app's `upgrade` saw it (null: the app has none), for `upgradeAborted`. */
  readonly request: UpgradeRequest | null;
}

/** Drops the header entries an app left undefined. */
function definedHeaders(headers: ResponseHeaders | undefined): Record<string, string> | undefined {
  if (headers === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
  return out;
}


/**
 * UpgradeHandler runs an opening handshake (RFC 6455 §4.2) on a request Node's HTTP parser has
 * read: validate, check the origin, negotiate permessage-deflate, ask the app, build the 101.
 * It returns the accepted connection's parameters and the 101 to write, or null after refusing it.
 */
export class UpgradeHandler {
  readonly #config: ServerConfig;
  readonly #app: App<unknown>;
  readonly #shard: Shard;
  readonly #logger: Logger;
  readonly #counters: Float64Array;

  constructor(config: ServerConfig, app: App<unknown>, shard: Shard, logger: Logger, counters: Float64Array) {
    this.#config = config;
    this.#app = app;
    this.#shard = shard;
    this.#logger = logger;
    this.#counters = counters;
  }

  async handle(req: HandshakeRequest, socket: Duplex): Promise<AcceptedUpgrade | null> {
    const remoteAddress = req.remoteAddress;
    this.#counters[Counter.HandshakesTotal]!++;
    const refused = (status: HandshakeStatus, reason: string, headers?: Readonly<Record<string, string>>, message?: string): null => {
      this.#counters[Counter.HandshakesRejected]!++;
      this.#logger.info({ remote: remoteAddress, url: req.url, status }, `upgrade refused: ${reason}`);
      refuse(socket, status, message ?? reason, headers);
      return null;
    };

    let info;
    try {
      info = validateUpgradeRequest(req);
    } catch (error) {
      if (error instanceof HandshakeError) return refused(error.status, error.message, error.headers);
      throw error;
    }
    const origins = this.#config.origins;
    if (origins !== null && (info.origin === undefined || !origins.includes(info.origin))) {
      return refused(403, `origin ${String(info.origin)} is not allowed`);
    }

    let compression: MessageCompression | null = null;
    let extensions = '';
    const deflate = this.#config.deflate;
    if (deflate !== null && info.extensionsHeader !== undefined) {
      let offers;
      try {
        offers = parseExtensionHeader(info.extensionsHeader);
      } catch (error) {
        if (error instanceof HandshakeError) return refused(error.status, error.message);
        throw error;
      }
      const accepted = acceptDeflateOffer(offers, deflate);
      if (accepted !== null) {
        const codec = new PerMessageDeflate('server', accepted.params, {
          maxMessageSize: this.#config.maxPayloadLength,
          level: deflate.level,
          memLevel: deflate.memLevel,
          threshold: deflate.threshold,
        });
        compression = messageCompression(codec);
        extensions = accepted.response;
      }
    }

    let data: unknown = undefined;
    let protocol = '';
    let headers: Readonly<Record<string, string>> | undefined;
    let request: UpgradeRequest | null = null;
    const app = this.#app;
    if (app.upgrade) {
      request = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        remoteAddress,
        protocols: info.protocols,
        // Made only if the app reads it: most never do.
        get raw() {
          return req.raw();
        },
      };
      let result;
      try {
        result = await app.upgrade(request, this.#shard);
      } catch (error) {
        compression?.close();
        this.#logger.error({ err: error, url: req.url }, 'app upgrade handler threw; answering 500');
        return refused(500, 'upgrade handler threw', undefined, 'Internal Server Error');
      }
      if (isRejection(result)) {
        compression?.close();
        const rejectHeaders = definedHeaders(result.headers);
        try {
          // A status we cannot answer with, or a header value that is not a field value, is the
          // app's bug: the client still gets an answer (500), never a silently closed socket.
          buildErrorResponse(result.reject, result.message, rejectHeaders);
        } catch (error) {
          this.#logger.error({ err: error, status: result.reject }, 'app upgrade handler rejected with an invalid status or headers; answering 500');
          return refused(500, 'invalid rejection', undefined, 'Internal Server Error');
        }
        return refused(result.reject, `rejected by the app (${result.reject})`, rejectHeaders, result.message);
      }
      if (result) {
        data = result.data;
        headers = definedHeaders(result.headers);
        if (result.protocol !== undefined) {
          if (!info.protocols.includes(result.protocol)) {
            this.#logger.error({ protocol: result.protocol, offered: info.protocols }, 'app chose a subprotocol the client did not offer');
            this.abort({ compression, request, data }, 'the app chose a subprotocol the client did not offer');
            return refused(500, 'invalid subprotocol choice', undefined, 'Internal Server Error');
          }
          protocol = result.protocol;
        }
      }
    }
    if (socket.destroyed) {
      this.abort({ compression, request, data }, 'the client went away during the upgrade');
      return null;
    }
    let response;
    try {
      response = buildUpgradeResponse({ key: info.key, protocol: protocol || undefined, extensions, headers });
    } catch (error) {
      this.#logger.error({ err: error }, 'invalid upgrade response headers from the app');
      this.abort({ compression, request, data }, 'invalid response headers from the app');
      return refused(500, 'invalid response headers', undefined, 'Internal Server Error');
    }
    return { data, protocol, extensions, compression, remoteAddress, response, request };
  }

  /**
   * An upgrade the app accepted will not open (the client left, or the response could not be
   * made): the codec's memory goes, and the app's `upgradeAborted` releases what `upgrade`
   * allocated for `data` (without it the data would be dropped silently).
   */
  abort(accepted: Pick<AcceptedUpgrade, 'compression' | 'request' | 'data'>, reason: string): void {
    accepted.compression?.close();
    const handler = this.#app.upgradeAborted;
    if (handler === undefined || accepted.request === null) return;
    this.#logger.debug({ url: accepted.request.url, reason }, 'upgrade aborted after the app accepted it');
    try {
      handler(accepted.request, accepted.data, reason);
    } catch (error) {
      this.#logger.error({ err: error }, 'app upgradeAborted handler threw');
    }
  }
}
