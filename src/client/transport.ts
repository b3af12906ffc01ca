/**
 * How the client's bytes reach the server before the upgrade: a TCP or TLS connection, made
 * directly or through an HTTP proxy's CONNECT tunnel (RFC 9110 §9.3.6), as browsers reach a
 * WebSocket server through a proxy. The result is a stream node:http writes the upgrade onto.
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { isIP, connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { UnexpectedResponseError } from './client-errors.ts';
import type { ClientTlsOptions, ResolvedClientOptions } from './client-options.ts';

/** Where to connect: a host (IPv6 without brackets), a port, and whether TLS runs on top. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
}

/** The endpoint a ws:, wss:, http: or https: URL names (default ports 80 and 443). */
export function endpointOf(url: URL): Endpoint {
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === '' ? (secure ? 443 : 80) : Number(url.port), secure };
}

/** CONNECT's authority-form target: host:port, an IPv6 address in brackets (RFC 9110 §9.3.6). */
export const authorityOf = (endpoint: Endpoint): string => `${isIP(endpoint.host) === 6 ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;

/** A connection being made; abort() stops it and destroys what it made so far. */
export interface PendingTransport {
  abort(): void;
}

export type TransportCallback = (error: Error | null, socket?: Duplex) => void;

/**
 * The TLS server name: the option's, else the host, except an IP address (RFC 6066 §3 allows
 * only DNS names; Node throws ERR_INVALID_ARG_VALUE for an IP). The certificate is still checked
 * against the address, since tls.connect falls back to `host` for that.
 */
export const serverNameFor = (host: string, tls: ClientTlsOptions): string | undefined =>
  tls.servername ?? (isIP(host) === 0 ? host : undefined);

/** Opens a TCP connection to `endpoint`, with TLS on top when it is secure. May throw (bad TLS options). */
export function connectDirect(endpoint: Endpoint, tls: ClientTlsOptions): Socket {
  if (!endpoint.secure) return netConnect({ host: endpoint.host, port: endpoint.port });
  return tlsConnect({ ...tls, host: endpoint.host, port: endpoint.port, servername: serverNameFor(endpoint.host, tls) });
}

/**
 * openTransport connects to `target`, through `options.proxy` when set, and calls back exactly
 * once with the stream or an error (never synchronously with an error: node:http reports it).
 */
export function openTransport(target: Endpoint, options: ResolvedClientOptions, callback: TransportCallback): PendingTransport {
  if (options.proxy === null) {
    let socket: Socket;
    try {
      socket = connectDirect(target, options.tls);
    } catch (error) {
      callback(error as Error);
      return NOTHING_PENDING;
    }
    callback(null, socket);
    return { abort: () => socket.destroy() };
  }
  let made: Duplex | null = null;
  const tunnel = openProxyTunnel(options.proxy, authorityOf(target), options.proxyTls, (error, socket) => {
    if (error !== null) {
      callback(error);
      return;
    }
    made = socket!;
    if (target.secure) {
      try {
        // TLS with the server runs inside the tunnel: the proxy sees only ciphertext.
        made = tlsConnect({ ...options.tls, socket: socket!, host: target.host, servername: serverNameFor(target.host, options.tls) });
      } catch (error) {
        socket!.destroy();
        callback(error as Error);
        return;
      }
    }
    callback(null, made);
  });
  return {
    abort() {
      tunnel.abort();
      made?.destroy();
    },
  };
}

const NOTHING_PENDING: PendingTransport = { abort() {} };

/**
 * openProxyTunnel asks the proxy at `proxy` for a tunnel to `authority` (CONNECT), with Basic
 * credentials from the proxy URL's user and password (Proxy-Authorization, RFC 9110 §11.7.1),
 * and calls back once: with the tunnel's stream after a 2xx, else with an error
 * (UnexpectedResponseError with `fromProxy` for any other status).
 */
export function openProxyTunnel(proxy: URL, authority: string, proxyTls: ClientTlsOptions, callback: (error: Error | null, tunnel?: Socket) => void): PendingTransport {
  const fields = ['Host', authority];
  const credentials = basicCredentials(proxy);
  if (credentials !== null) fields.push('Proxy-Authorization', credentials);
  let settled = false;
  let tunnel: Socket | null = null;
  const settle = (error: Error | null): void => {
    if (settled) return;
    settled = true;
    callback(error, tunnel ?? undefined);
  };
  const req = httpRequest({
    method: 'CONNECT',
    path: authority,
    headers: fields,
    setHost: false,
    createConnection: (_options, created) => {
      try {
        created(null, connectDirect(endpointOf(proxy), proxyTls));
      } catch (error) {
        created(error as Error, undefined as unknown as Duplex);
      }
      return undefined;
    },
  });
  req.on('connect', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) {
      socket.destroy();
      settle(new UnexpectedResponseError(status, res.statusMessage ?? '', res.headers, true));
      return;
    }
    // Neither WebSocket nor TLS lets the server speak first; bytes here would be the proxy's mistake, kept in order anyway.
    if (head.length > 0) socket.unshift(head);
    tunnel = socket;
    settle(null);
  });
  req.on('error', (error) => settle(new Error(`proxy ${proxy.host}: ${error.message}`, { cause: error })));
  req.end();
  return {
    abort() {
      settled = true;
      if (tunnel === null) req.destroy();
      else tunnel.destroy();
    },
  };
}

/** The `Basic` credentials (RFC 7617) of a URL's user and password, or null when it has none. */
export function basicCredentials(url: URL): string | null {
  if (url.username === '' && url.password === '') return null;
  return `Basic ${Buffer.from(`${decodeUserinfo(url.username)}:${decodeUserinfo(url.password)}`).toString('base64')}`;
}

/** A URL's user or password as text: percent-decoded where that is well-formed (a constructor must not throw URIError), as is otherwise. */
function decodeUserinfo(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
