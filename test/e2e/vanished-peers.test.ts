/**
 * Peers that vanish: clients that reset mid-frame or mid-handshake must leave no descriptor or
 * memory behind, a peer that sends its last frames with a FIN still gets them answered, and a
 * peer that never answers our close is dropped after closeTimeout. (A
 * client that stops reading is bounded by the backpressure policy: backpressure.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { RawConnection, cleanup, clientFrame, fixtureApp, openClient, rawWebSocket, startServer, upgradeRequest, waitFor, wsUrl } from './helpers.ts';
import { MIB, RssSampler, hasProcFd, openFds, settledFds } from './resources.ts';

afterEach(cleanup);

const handshakes = (server: ShardServer): number => server.stats().workers.reduce((sum, w) => sum + w.handshakes, 0);

async function stillEchoes(server: ShardServer): Promise<void> {
  const client = await openClient(wsUrl(server, '/echo'));
  expect((await client.request('still serving')).data.toString()).toBe('still serving');
  client.ws.close();
  await client.waitClosed();
  expect(server.stats().restarts).toBe(0);
}

/** Writes `bytes` and waits until the kernel has them, so the reset comes after they arrive. */
function written(raw: RawConnection, bytes: Buffer | string): Promise<void> {
  return new Promise((resolve) => raw.socket.write(bytes, () => setImmediate(resolve)));
}

/** Half of a 1000-byte masked binary frame: the header, the mask key and 500 payload bytes. */
const halfFrame = (): Buffer => clientFrame(0x2, Buffer.alloc(1000, 7)).subarray(0, 8 + 500);

async function resetMidFrame(port: number, count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, async () => {
      const raw = await rawWebSocket(port, '/echo');
      await written(raw, halfFrame());
      raw.socket.resetAndDestroy();
    }),
  );
}

async function resetMidHandshake(port: number, count: number): Promise<void> {
  const request = upgradeRequest('/echo');
  await Promise.all(
    Array.from({ length: count }, async () => {
      const raw = await RawConnection.open(port);
      await written(raw, request.slice(0, request.length >> 1));
      raw.socket.resetAndDestroy();
    }),
  );
}

describe('clients that reset', () => {
  it.skipIf(!hasProcFd)('500 clients that send half a frame and reset leave no descriptors or memory behind (skipped without /proc/self/fd to count descriptors)', async () => {
    const server = await startServer({ app: fixtureApp('commands') });
    const port = server.address().port;
    // The same path once before the baseline, so whatever is created lazily exists already.
    await resetMidFrame(port, 50);
    await waitFor(() => server.stats().connections === 0, 'the warm-up connections to go');
    const baseline = await settledFds();
    const memory = new RssSampler(20);
    for (let batch = 0; batch < 10; batch++) await resetMidFrame(port, 50);
    await waitFor(() => server.stats().connections === 0 && openFds() <= baseline, `descriptors back to ${baseline}`, 5000);
    const { growth } = memory.stop();
    expect(growth).toBeLessThan(48 * MIB);
    await stillEchoes(server);
    await waitFor(() => openFds() <= baseline, 'the echo client to be gone too');
  });

  it.skipIf(!hasProcFd)('250 clients that reset in the middle of their upgrade request leave nothing behind (skipped without /proc/self/fd)', async () => {
    const server = await startServer({ app: fixtureApp('commands') });
    const port = server.address().port;
    await resetMidHandshake(port, 50);
    await waitFor(() => handshakes(server) === 0, 'the warm-up handshakes to go');
    const baseline = await settledFds();
    for (let batch = 0; batch < 5; batch++) await resetMidHandshake(port, 50);
    await waitFor(() => handshakes(server) === 0 && openFds() <= baseline, `descriptors back to ${baseline}`, 5000);
    await stillEchoes(server);
  });
});

describe('closeTimeout', () => {
  it('destroys a peer that never answers the close the server started, after closeTimeout', async () => {
    const server = await startServer({ app: fixtureApp('commands'), closeTimeout: 1 });
    const raw = await rawWebSocket(server.address().port, '/echo');
    // Before the request that makes the server close: its closeTimeout cannot start earlier.
    const closeSeen = Date.now();
    raw.socket.write(clientFrame(0x1, Buffer.from('close:1000:bye')));
    expect((await raw.nextClose()).code).toBe(1000);
    // We never send our close frame (nor a FIN).
    await waitFor(() => raw.ended || raw.closed, 'the server to drop the silent peer', 4000);
    const waited = Date.now() - closeSeen;
    expect(waited).toBeGreaterThanOrEqual(800);
    expect(waited).toBeLessThan(3000);
    await waitFor(() => server.stats().connections === 0, 'the connection to be uncounted');
    await stillEchoes(server);
  });

  it('destroys a peer that keeps its side open after a protocol error, after closeTimeout', async () => {
    const server = await startServer({ app: fixtureApp('commands'), closeTimeout: 1 });
    const raw = await RawConnection.open(server.address().port, { allowHalfOpen: true });
    expect((await raw.request(upgradeRequest('/echo'))).status).toBe(101);
    const closeSeen = Date.now();
    raw.socket.write(clientFrame(0x1, Buffer.from([0xff])));
    expect((await raw.nextClose()).code).toBe(1007);
    // The server has closed its side (FIN); this peer keeps its own open and says nothing.
    await raw.waitEnded();
    await waitFor(() => server.stats().connections === 0, 'the server to destroy the half-open socket', 4000);
    const waited = Date.now() - closeSeen;
    expect(waited).toBeGreaterThanOrEqual(800);
    expect(waited).toBeLessThan(3000);
    await stillEchoes(server);
  });
});

describe('a peer whose input piled up behind an inflation', () => {
  // Found by `npm run fuzz -- --deflate`: reading stopped while frames piled up behind an
  // inflation and stayed stopped after the connection failed, so the peer's close reply and FIN
  // went unread and the connection lingered until closeTimeout (10 s) destroyed it.
  it('has its close reply and FIN seen at once after the server fails the connection', async () => {
    const server = await startServer({ app: fixtureApp('commands'), deflate: 'dedicated' });
    const raw = await RawConnection.open(server.address().port);
    const head = await raw.request(upgradeRequest('/echo', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(head.headers['sec-websocket-extensions']).toContain('permessage-deflate');
    // 64 MiB of zeros in ~64 KiB: inflating it takes a while and fails with 1009 (16 MiB limit) ...
    const block = deflateRawSync(Buffer.alloc(1024 * 1024), { finishFlush: constants.Z_SYNC_FLUSH });
    const bomb = clientFrame(0x2, Buffer.concat(Array.from({ length: 64 }, () => block)));
    bomb[0] = bomb[0]! | 0x40;
    // ... while 4 MiB more arrive behind it: more than the reader buffers before it stops reading.
    const behind = clientFrame(0x2, Buffer.alloc(4 * 1024 * 1024));
    raw.socket.write(Buffer.concat([bomb, behind]));
    expect((await raw.nextClose(10_000)).code).toBe(1009);
    const replied = Date.now();
    raw.socket.end(clientFrame(0x8, Buffer.from([0x03, 0xf1])));
    await waitFor(() => server.stats().connections === 0, 'the server to let go of the connection', 5000);
    expect(Date.now() - replied).toBeLessThan(2000);
    await stillEchoes(server);
  });
});

describe('a peer that sends its last frames and a FIN at once', () => {
  // Found by fuzz.test.ts: the FIN ended the connection while the message still inflated on
  // zlib's thread pool, so the echo and the answer to the close frame were lost; then (dedicated
  // mode) the close reply went out while the echo was being compressed, and the echo was lost.
  it.each(['shared', 'dedicated'] as const)('still gets the echo of a compressed message and the close reply (%s compression)', async (mode) => {
    const server = await startServer({ app: fixtureApp('commands'), deflate: mode });
    const raw = await RawConnection.open(server.address().port, { allowHalfOpen: true });
    const head = await raw.request(upgradeRequest('/echo', { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }));
    expect(head.headers['sec-websocket-extensions']).toContain('permessage-deflate');
    // 16 KiB of random bytes: too large to inflate synchronously in either mode.
    const message = randomBytes(16 * 1024);
    const compressed = clientFrame(0x2, deflateRawSync(message, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4));
    compressed[0] = compressed[0]! | 0x40;
    const close = clientFrame(0x8, Buffer.from([0x0f, 0xa0, ...Buffer.from('done')]));
    raw.socket.end(Buffer.concat([compressed, close]));

    const echo = await raw.nextFrame();
    expect(echo.opcode).toBe(0x2);
    const echoed = echo.rsv1 ? inflateRawSync(echo.payload, { finishFlush: constants.Z_SYNC_FLUSH }) : echo.payload;
    expect(echoed.equals(message)).toBe(true);
    expect((await raw.nextClose()).code).toBe(4000);
    await raw.waitEnded();
    await waitFor(() => server.stats().connections === 0, 'the connection to be uncounted');
    await stillEchoes(server);
  });
});
