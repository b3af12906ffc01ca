/**
 * spliceSockets over real loopback TCP connections: the early bytes first, bytes both ways in
 * order, a FIN passed on while the other direction goes on, a reset ending both, the idle
 * timeout, the read-buffer path's copies and its backpressure, and destroy().
 */
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { spliceSockets } from '../../src/worker/byte-splice.ts';
import { until } from '../support/worker-fakes.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A connected pair of loopback TCP sockets: [the end the splice gets, the peer the test drives]. */
async function pair(server: Server): Promise<[Socket, Socket]> {
  const port = (server.address() as AddressInfo).port;
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const peer = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve) => peer.once('connect', resolve));
  const near = await accepted;
  closers.push(() => {
    near.destroy();
    peer.destroy();
  });
  return [near, peer];
}

async function listener(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  return server;
}

/** Everything `socket` receives, and whether it saw the peer's FIN. */
function reader(socket: Socket): { text: () => string; ended: () => boolean; closed: () => boolean } {
  const chunks: Buffer[] = [];
  let ended = false;
  let closed = false;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('end', () => (ended = true));
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  return { text: () => Buffer.concat(chunks).toString(), ended: () => ended, closed: () => closed };
}

async function spliced(options: { early?: string[]; head?: string; idleMs?: number; reads?: 'data-events' | 'read-buffer' } = {}) {
  const server = await listener();
  const [client, clientPeer] = await pair(server);
  const [upstream, upstreamPeer] = await pair(server);
  let done = 0;
  const splice = spliceSockets(
    client,
    options.reads ?? 'data-events',
    (options.early ?? []).map((s) => Buffer.from(s)),
    upstream,
    Buffer.from(options.head ?? ''),
    options.idleMs ?? 0,
    () => done++,
  );
  return { splice, client, clientPeer, upstream, upstreamPeer, done: () => done, atClient: reader(clientPeer), atUpstream: reader(upstreamPeer) };
}

describe('spliceSockets', () => {
  it("sends the client's early bytes and the upstream's head first, then copies both ways in order", async () => {
    const s = await spliced({ early: ['GET-rest', '|more'], head: 'HEAD-bytes|' });
    for (let i = 0; i < 50; i++) s.clientPeer.write(`c${i},`);
    for (let i = 0; i < 50; i++) s.upstreamPeer.write(`u${i},`);
    const toUpstream = 'GET-rest|more' + Array.from({ length: 50 }, (_, i) => `c${i},`).join('');
    const toClient = 'HEAD-bytes|' + Array.from({ length: 50 }, (_, i) => `u${i},`).join('');
    await until(() => s.atUpstream.text().length === toUpstream.length && s.atClient.text().length === toClient.length, 'bytes both ways');
    expect(s.atUpstream.text()).toBe(toUpstream);
    expect(s.atClient.text()).toBe(toClient);
  });

  it("passes a FIN on while the other direction still flows, and runs done once when both are closed", async () => {
    const s = await spliced();
    s.clientPeer.end('last from client');
    await until(() => s.atUpstream.ended(), 'the FIN at the upstream');
    expect(s.atUpstream.text()).toBe('last from client');
    // The upstream still answers (the closing handshake's other half travels after a FIN).
    s.upstreamPeer.write('still talking');
    await until(() => s.atClient.text() === 'still talking', 'the upstream after the FIN');
    expect(s.done()).toBe(0);
    s.upstreamPeer.end();
    await until(() => s.done() === 1, 'done');
    await until(() => s.atClient.closed() && s.atUpstream.closed(), 'both peers closed');
    expect(s.done()).toBe(1);
  });

  it('a reset on either side ends both', async () => {
    const s = await spliced();
    s.upstreamPeer.resetAndDestroy();
    await until(() => s.done() === 1, 'done');
    // The client's peer sees its connection end (it is half-open here, so it stays until it ends too).
    await until(() => s.atClient.ended() || s.atClient.closed(), 'the client connection ended');
    expect(s.client.destroyed).toBe(true);
  });

  it('cuts a connection silent both ways for the idle timeout, not one that talks', async () => {
    const s = await spliced({ idleMs: 1000 });
    // Traffic keeps it open past the timeout (gaps a fifth of it, so a loaded machine is no matter).
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      s.upstreamPeer.write('tick');
    }
    expect(s.done()).toBe(0);
    await until(() => s.done() === 1, 'the idle cut', 5000);
    expect(s.client.destroyed && s.upstream.destroyed).toBe(true);
  });

  it('read-buffer: each read is copied before the shared buffer is reused, and a full upstream pauses the client', async () => {
    const s = await spliced({ reads: 'read-buffer' });
    const shared = Buffer.from('first');
    s.splice.fromClient(shared);
    shared.write('XXXXX');
    s.splice.fromClient(Buffer.from('|second'));
    await until(() => s.atUpstream.text() === 'first|second', 'the copies at the upstream');
    // The upstream peer stops reading: writes back up until the client is paused.
    s.upstreamPeer.pause();
    const big = Buffer.alloc(256 * 1024, 0x61);
    for (let i = 0; i < 400 && !s.client.isPaused(); i++) {
      s.splice.fromClient(big);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(s.client.isPaused()).toBe(true);
    s.upstreamPeer.resume();
    await until(() => !s.client.isPaused(), 'the client resumed on drain', 10_000);
  });

  it('read-buffer: the client FIN is passed on', async () => {
    const s = await spliced({ reads: 'read-buffer' });
    s.client.resume();
    s.clientPeer.end();
    await until(() => s.atUpstream.ended(), 'the FIN at the upstream');
  });

  it('destroy() ends both at once (shutdown)', async () => {
    const s = await spliced();
    s.splice.destroy();
    await until(() => s.done() === 1, 'done');
    expect(s.client.destroyed && s.upstream.destroyed).toBe(true);
    await until(() => (s.atClient.ended() || s.atClient.closed()) && (s.atUpstream.ended() || s.atUpstream.closed()), 'both peers to see the end');
  });
});
