/**
 * Opening the upstream leg of a proxied connection: a TCP (or TLS) connection to the upstream
 * and its WebSocket opening handshake (RFC 6455 §4.1), through Node's HTTP client (its parser
 * reads the response), within a time limit. The result is the upgraded socket and the 101, or
 * what the client is to be answered instead: 502 when the upstream refused, could not be
 * reached or answered wrongly, 504 when it did not answer in time. Never a 101 for a failure.
 */
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import { HandshakeError } from '../shared/errors.ts';
import { validateUpgradeResponse } from '../shared/handshake.ts';
import type { UpgradeResponseInfo } from '../shared/handshake.ts';

export interface DialRequest {
  readonly url: string;
  readonly headers: OutgoingHttpHeaders;
  /** The Sec-WebSocket-Key sent (in `headers` too): the 101's Accept must answer it. */
  readonly key: string;
  /** Subprotocols offered (in `headers` too): the upstream may choose only one of them. */
  readonly protocols: readonly string[];
  readonly timeoutMs: number;
  readonly tls: { readonly ca?: string | readonly string[]; readonly rejectUnauthorized?: boolean; readonly servername?: string } | null;
}

export type DialResult =
  | {
      readonly kind: 'open';
      readonly socket: Socket;
      /** Bytes the upstream sent after its 101, read with it. */
      readonly head: Buffer;
      readonly response: IncomingMessage;
      readonly info: UpgradeResponseInfo;
    }
  | {
      readonly kind: 'failed';
      readonly status: 502 | 504;
      readonly reason: string;
      /** The upstream could not be reached or did not answer: it backs off (upstream-pool.ts). */
      readonly unreachable: boolean;
    };

const ignoreError = (): void => {};

/** Dials `request.url` and runs the opening handshake; settles once, never rejects. */
export function dialUpstream(request: DialRequest): Promise<DialResult> {
  const url = new URL(request.url);
  const secure = url.protocol === 'wss:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return new Promise<DialResult>((resolve) => {
    let settled = false;
    let req: ClientRequest | null = null;
    const settle = (result: DialResult): void => {
      if (settled) {
        if (result.kind === 'open') result.socket.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const fail = (status: 502 | 504, reason: string, unreachable: boolean): void => {
      settle({ kind: 'failed', status, reason, unreachable });
      req?.destroy();
    };
    const timer = setTimeout(() => fail(504, `upstream ${url.host} did not answer the upgrade within ${request.timeoutMs / 1000} s`, true), request.timeoutMs);
    const tls = request.tls ?? {};
    // RFC 6066 §3: no server name for an address (Node throws for one); the certificate is
    // checked against the address itself.
    const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
    try {
      req = (secure ? httpsRequest : httpRequest)({
        host,
        port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
        path: url.pathname + url.search,
        headers: request.headers,
        agent: false,
        setHost: false,
        ...(secure
          ? {
              ca: tls.ca as string | string[] | undefined,
              rejectUnauthorized: tls.rejectUnauthorized ?? true,
              servername,
              ALPNProtocols: ['http/1.1'],
            }
          : {}),
      });
    } catch (error) {
      // Options Node refuses before any connection (a TLS option of the wrong kind): still a 502.
      fail(502, `upstream ${url.host}: ${(error as Error).message}`, false);
      return;
    }
    req.on('error', (error: NodeJS.ErrnoException) => fail(502, `upstream ${url.host} failed: ${error.code ?? error.message}`, true));
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      fail(502, `upstream ${url.host} answered the upgrade with ${res.statusCode ?? '?'}`, false);
    });
    req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      if (settled) {
        socket.destroy();
        return;
      }
      try {
        const info = validateUpgradeResponse(res, { key: request.key, protocols: request.protocols });
        // Node's client lets go of the socket's errors at the upgrade: until a leg listens, a
        // reset only closes it.
        socket.on('error', ignoreError);
        settle({ kind: 'open', socket, head, response: res, info });
      } catch (error) {
        socket.destroy();
        if (!(error instanceof HandshakeError)) throw error;
        fail(502, `upstream ${url.host}: ${error.message}`, false);
      }
    });
    req.end();
  });
}
