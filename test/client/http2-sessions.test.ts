import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import type { ClientHttp2Session, Http2SecureServer, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Http2SessionPool } from '../../src/client/http2-sessions.ts';

const pem = (name: string): Buffer => readFileSync(fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url)));
const tls = { ca: pem('cert.pem') };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function h2Server(enableConnectProtocol: boolean, maxConcurrentStreams?: number): Promise<{ server: Http2SecureServer; url: URL; sessions: () => number }> {
  const server = createSecureServer({ cert: pem('cert.pem'), key: pem('key.pem'), settings: { enableConnectProtocol, ...(maxConcurrentStreams === undefined ? {} : { maxConcurrentStreams }) } });
  let sessions = 0;
  server.on('session', () => sessions++);
  server.on('stream', (stream: ServerHttp2Stream) => stream.respond({ ':status': 200 }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return { server, url: new URL(`wss://localhost:${(server.address() as { port: number }).port}/`), sessions: () => sessions };
}

function session(pool: Http2SessionPool, url: URL, options: object = tls): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => pool.session(url, options, (error, opened) => (error === null ? resolve(opened!) : reject(error))));
}

describe('Http2SessionPool', () => {
  it('shares one connection per origin and TLS settings, and opens another for other settings', async () => {
    const pool = new Http2SessionPool();
    cleanups.push(() => pool.closeAll());
    const { url, sessions } = await h2Server(true);
    const [a, b] = await Promise.all([session(pool, url), session(pool, url)]);
    expect(a).toBe(b);
    expect(await session(pool, url)).toBe(a);
    const other = await session(pool, url, { ...tls, servername: 'localhost' });
    expect(other).not.toBe(a);
    expect(pool.size).toBe(2);
    expect(sessions()).toBe(2);
  });

  it("opens another connection when every open one carries as many streams as its server allows", async () => {
    const pool = new Http2SessionPool();
    cleanups.push(() => pool.closeAll());
    const { url, sessions } = await h2Server(true, 2);
    /** A stream opened as the client and the load generator open theirs: request, then opened(). */
    const stream = (): Promise<{ session: ClientHttp2Session; close: () => void }> =>
      new Promise((resolve, reject) =>
        pool.session(url, tls, (error, opened) => {
          if (error !== null) return reject(error);
          const request = opened!.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': url.host }, { endStream: false });
          pool.opened(opened!, request);
          request.once('response', () => resolve({ session: opened!, close: () => request.close() }));
          request.once('error', reject);
        }),
      );
    const first = await stream();
    const rest = await Promise.all([stream(), stream(), stream(), stream()]);
    const used = new Set([first.session, ...rest.map((r) => r.session)]);
    // Five streams, two per connection: three connections, none over its limit.
    expect(used.size).toBe(3);
    expect(sessions()).toBe(3);
    for (const session of used) expect([first, ...rest].filter((r) => r.session === session).length).toBeLessThanOrEqual(2);
    // A stream that ends makes room on its connection again.
    first.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await stream();
    expect(again.session).toBe(first.session);
    expect(sessions()).toBe(3);
  });

  it('replaces a connection after its GOAWAY', async () => {
    const pool = new Http2SessionPool();
    cleanups.push(() => pool.closeAll());
    const { server, url } = await h2Server(true);
    const serverSide = once(server, 'session') as Promise<[ServerHttp2Session]>;
    const first = await session(pool, url);
    const [peer] = await serverSide;
    const goaway = once(first, 'goaway');
    peer.goaway();
    await goaway;
    const next = await session(pool, url);
    expect(next).not.toBe(first);
  });

  it('fails a server that never enabled extended CONNECT (RFC 8441 §3), and one that is not there', async () => {
    const pool = new Http2SessionPool();
    const { url } = await h2Server(false);
    await expect(session(pool, url)).rejects.toThrow(/ENABLE_CONNECT_PROTOCOL/);
    expect(pool.size).toBe(0);
    await expect(session(pool, new URL('wss://127.0.0.1:1/'))).rejects.toThrow(/HTTP\/2 connection to 127\.0\.0\.1:1/);
  });

  it('stops telling an aborted caller', async () => {
    const pool = new Http2SessionPool();
    cleanups.push(() => pool.closeAll());
    const { url } = await h2Server(true);
    let told = false;
    pool.session(url, tls, () => (told = true)).abort();
    await session(pool, url);
    expect(told).toBe(false);
  });
});
