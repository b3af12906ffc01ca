/** Reaching the server: endpoints, TLS server names, and CONNECT tunnels through a real proxy. */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { UnexpectedResponseError } from '../../src/client/client-errors.ts';
import { resolveClientOptions } from '../../src/client/client-options.ts';
import type { ClientOptions } from '../../src/client/client-options.ts';
import { authorityOf, endpointOf, openProxyTunnel, openTransport, serverNameFor } from '../../src/client/transport.ts';
import { startConnectProxy } from '../support/connect-proxy.ts';
import type { ConnectProxy } from '../support/connect-proxy.ts';
import { testCert, testKey } from '../support/tls-fixture.ts';

const cert = testCert;
const key = testKey;

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function proxy(options: Parameters<typeof startConnectProxy>[0] = {}): Promise<ConnectProxy> {
  const p = await startConnectProxy(options);
  closers.push(() => p.close());
  return p;
}

/** A TCP (or TLS) server that answers each line it reads with "echo:" + the line. */
async function echoServer(secure: boolean): Promise<{ port: number; servernames: (string | false | null)[] }> {
  const servernames: (string | false | null)[] = [];
  const onSocket = (socket: Socket | TLSSocket): void => {
    if ('servername' in socket) servernames.push(socket.servername);
    socket.on('error', () => {});
    socket.on('data', (chunk) => socket.write(`echo:${chunk}`));
  };
  const server: Server = secure ? createTlsServer({ cert, key }, onSocket) : createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, servernames };
}

function roundTrip(stream: Duplex, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    stream.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    stream.once('error', reject);
    stream.write(text);
  });
}

function transport(url: string, options: ClientOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    openTransport(endpointOf(new URL(url)), resolveClientOptions(options), (error, socket) => {
      if (error !== null) reject(error);
      else {
        closers.push(() => void socket!.destroy());
        resolve(socket!);
      }
    });
  });
}

describe('endpoints', () => {
  it('reads host, port and TLS from ws, wss, http and https URLs', () => {
    expect(endpointOf(new URL('ws://example.com/x'))).toEqual({ host: 'example.com', port: 80, secure: false });
    expect(endpointOf(new URL('wss://example.com/x'))).toEqual({ host: 'example.com', port: 443, secure: true });
    expect(endpointOf(new URL('wss://[::1]:9001/'))).toEqual({ host: '::1', port: 9001, secure: true });
    expect(endpointOf(new URL('http://proxy:3128'))).toEqual({ host: 'proxy', port: 3128, secure: false });
    expect(authorityOf({ host: '::1', port: 443, secure: true })).toBe('[::1]:443');
    expect(authorityOf({ host: '10.0.0.5', port: 9001, secure: true })).toBe('10.0.0.5:9001');
  });

  it('sends a TLS server name only for DNS names (RFC 6066 §3)', () => {
    expect(serverNameFor('example.com', {})).toBe('example.com');
    expect(serverNameFor('10.0.0.5', {})).toBeUndefined();
    expect(serverNameFor('::1', {})).toBeUndefined();
    expect(serverNameFor('10.0.0.5', { servername: 'api.example.com' })).toBe('api.example.com');
  });
});

describe('openTransport', () => {
  it('connects with TLS to an IP address, checking the certificate against it', async () => {
    const server = await echoServer(true);
    const socket = await transport(`wss://127.0.0.1:${server.port}/`, { tls: { ca: cert } });
    expect(await roundTrip(socket, 'hi')).toBe('echo:hi');
    expect(server.servernames).toEqual([false]);
  });

  it('tunnels through a CONNECT proxy, plain and with TLS inside the tunnel', async () => {
    const p = await proxy({ credentials: 'ann:s3cret' });
    const plain = await echoServer(false);
    const secure = await echoServer(true);
    const via = p.url.replace('http://', 'http://ann:s3cret@');
    expect(await roundTrip(await transport(`ws://127.0.0.1:${plain.port}/`, { proxy: via }), 'a')).toBe('echo:a');
    expect(await roundTrip(await transport(`wss://localhost:${secure.port}/`, { proxy: via, tls: { ca: cert } }), 'b')).toBe('echo:b');
    expect(secure.servernames).toEqual(['localhost']);
    expect(p.tunnels).toEqual([
      { authority: `127.0.0.1:${plain.port}`, host: `127.0.0.1:${plain.port}`, proxyAuthorization: `Basic ${Buffer.from('ann:s3cret').toString('base64')}` },
      { authority: `localhost:${secure.port}`, host: `localhost:${secure.port}`, proxyAuthorization: `Basic ${Buffer.from('ann:s3cret').toString('base64')}` },
    ]);
  });

  it('reaches an https:// proxy over TLS, trusting it through proxyTls', async () => {
    const p = await proxy({ tls: { cert, key } });
    const plain = await echoServer(false);
    const socket = await transport(`ws://127.0.0.1:${plain.port}/`, { proxy: p.url, proxyTls: { ca: cert } });
    expect(await roundTrip(socket, 'c')).toBe('echo:c');
    await expect(transport(`ws://127.0.0.1:${plain.port}/`, { proxy: p.url })).rejects.toThrow(/proxy 127\.0\.0\.1:\d+: .*(self-signed|certificate)/);
  });

  it('abort() while the tunnel is being made leaves nothing open', async () => {
    const p = await proxy();
    const plain = await echoServer(false);
    let called = false;
    const pending = openTransport(endpointOf(new URL(`ws://127.0.0.1:${plain.port}/`)), resolveClientOptions({ proxy: p.url }), () => (called = true));
    pending.abort();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(called).toBe(false);
    expect(p.openTunnels()).toBe(0);
  });
});

describe('openProxyTunnel refusals', () => {
  const tunnel = (proxyUrl: string, authority = '127.0.0.1:1'): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      openProxyTunnel(new URL(proxyUrl), authority, {}, (error, socket) => (error === null ? resolve(socket!) : reject(error)));
    });

  it('reports 407 without credentials as an UnexpectedResponseError from the proxy', async () => {
    const p = await proxy({ credentials: 'ann:s3cret' });
    const error = await tunnel(p.url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnexpectedResponseError);
    expect(error).toMatchObject({ status: 407, fromProxy: true, message: 'the proxy refused the tunnel with 407 Proxy Authentication Required' });
    expect((error as UnexpectedResponseError).headers['proxy-authenticate']).toBe('Basic realm="test"');
    await expect(tunnel(p.url.replace('http://', 'http://ann:wrong@'))).rejects.toMatchObject({ status: 407 });
  });

  it('reports a 502 and a proxy that is not there, naming the proxy', async () => {
    const p = await proxy({ refuseWith: 502 });
    await expect(tunnel(p.url)).rejects.toMatchObject({ status: 502, fromProxy: true });
    const gone = await echoServer(false);
    await closers.pop()!(); // the echo server is closed: nothing listens on its port
    await expect(tunnel(`http://127.0.0.1:${gone.port}`)).rejects.toThrow(new RegExp(`proxy 127\\.0\\.0\\.1:${gone.port}: .*ECONNREFUSED`));
  });
});
