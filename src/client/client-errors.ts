/** Errors the client reports in `error` events beside ProtocolError and HandshakeError. */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * UnexpectedResponseError: the server answered the upgrade with an HTTP status other than 101
 * (a refusal, or a redirect that is not followed), or a proxy refused the CONNECT tunnel.
 */
export class UnexpectedResponseError extends Error {
  /** The HTTP status, e.g. 401, 302, 503; for a proxy, e.g. 407 or 502. */
  readonly status: number;
  readonly statusText: string;
  readonly headers: IncomingHttpHeaders;
  /** The answer came from the proxy (`proxy` option), not from the WebSocket server. */
  readonly fromProxy: boolean;

  constructor(status: number, statusText: string, headers: IncomingHttpHeaders, fromProxy: boolean) {
    const who = fromProxy ? 'the proxy refused the tunnel with' : 'server answered the upgrade with';
    super(`${who} ${status} ${statusText}`.trim());
    this.name = 'UnexpectedResponseError';
    this.status = status;
    this.statusText = statusText;
    this.headers = headers;
    this.fromProxy = fromProxy;
  }
}
