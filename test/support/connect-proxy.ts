/**
 * A small real HTTP proxy for the client's tests: node:http answering CONNECT with a TCP tunnel
 * (RFC 9110 §9.3.6), optionally demanding Basic credentials (407 otherwise), recording each
 * tunnel asked for. Over TLS when given a certificate (an https:// proxy).
 */
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface TunnelRequest {
  readonly authority: string;
  readonly host: string | undefined;
  readonly proxyAuthorization: string | undefined;
}

export interface ConnectProxy {
  /** http://127.0.0.1:PORT (https:// when started with TLS). */
  readonly url: string;
  readonly tunnels: TunnelRequest[];
  /** Tunnels open now (both sides still connected). */
  openTunnels(): number;
  close(): Promise<void>;
}

export interface ConnectProxyOptions {
  /** `user:password` the proxy requires; without it any client may tunnel. */
  readonly credentials?: string;
  /** PEM certificate and key: the proxy speaks TLS (https:// proxy). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Answer every CONNECT with this status instead of tunnelling (e.g. 502). */
  readonly refuseWith?: number;
}

export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const server: Server = options.tls === undefined ? createHttpServer() : createHttpsServer(options.tls);
  const tunnels: TunnelRequest[] = [];
  const sockets = new Set<Duplex>();
  let open = 0;
  const expected = options.credentials === undefined ? undefined : `Basic ${Buffer.from(options.credentials).toString('base64')}`;
  server.on('request', (_req, res) => res.writeHead(405).end());
  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    const authority = req.url ?? '';
    tunnels.push({ authority, host: req.headers.host, proxyAuthorization: req.headers['proxy-authorization'] });
    if (expected !== undefined && req.headers['proxy-authorization'] !== expected) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (options.refuseWith !== undefined) {
      client.end(`HTTP/1.1 ${options.refuseWith} Refused\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const colon = authority.lastIndexOf(':');
    const host = authority.slice(0, colon).replace(/^\[|\]$/g, '');
    const upstream: Socket = connect({ host, port: Number(authority.slice(colon + 1)) });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => sockets.delete(upstream));
    upstream.once('connect', () => {
      open++;
      let closed = false;
      const done = (): void => {
        if (closed) return;
        closed = true;
        open--;
      };
      upstream.once('close', done);
      client.once('close', done);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    tunnels,
    openTunnels: () => open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
