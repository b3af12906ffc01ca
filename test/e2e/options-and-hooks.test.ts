/**
 * The opt-outs for trusted peers and the hooks, over real sockets with ws clients: autoPong
 * (and a gateway route under it), skipUtf8Validation, maxFrameSize, maxFragments,
 * slowClientTimeout (both policies), `dropped` and `upgradeAborted`.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { ListenOptions } from '../../src/main/listen.ts';
import { RawConnection, TestClient, cleanup, clientFrame, fixtureApp, rawWebSocket, startServer, upgradeRequest, waitFor, wsUrl } from './helpers.ts';

afterEach(cleanup);

const start = (options: ListenOptions = {}) => startServer({ app: fixtureApp('options'), workers: 1, ...options });
const open = async (options: ListenOptions = {}) => {
  const server = await start(options);
  return { server, client: await new TestClient(wsUrl(server)).opened() };
};
const pongs = (client: TestClient): string[] => {
  const got: string[] = [];
  client.ws.on('pong', (data: Buffer) => got.push(data.toString()));
  return got;
};

describe('autoPong', () => {
  it('answers pings by default', async () => {
    const { client } = await open();
    const got = pongs(client);
    client.ws.ping('hello');
    await waitFor(() => got.length === 1, 'the pong');
    expect(got).toEqual(['hello']);
  });

  it('off: pings go unanswered unless the app answers in its ping handler (ws.pong)', async () => {
    const { client } = await open({ autoPong: false });
    const got = pongs(client);
    client.ws.ping('ignored');
    client.ws.ping('answer-me');
    await waitFor(() => got.length === 1, 'the app’s pong');
    // An echo after both pings: had the first been answered, its pong would have come by now.
    expect((await client.request('after')).data.toString()).toBe('after');
    expect(got).toEqual(['answered']);
  });

  it('off: a proxied connection still answers pings (its app is the gateway, which answers its own leg)', async () => {
    const upstream = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => upstream.once('listening', () => resolve()));
    try {
      const url = `ws://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
      const server = await startServer({ autoPong: false, workers: 1, routes: { '/up': { proxy: { url } } } });
      const client = await new TestClient(wsUrl(server, '/up')).opened();
      const got = pongs(client);
      client.ws.ping('through');
      await waitFor(() => got.length === 1, 'the gateway’s pong');
      expect(got).toEqual(['through']);
    } finally {
      for (const ws of upstream.clients) ws.terminate();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});

describe('skipUtf8Validation', () => {
  const INVALID = Buffer.from([0x61, 0xff, 0xfe, 0x62]);

  it('off (the default): text that is not UTF-8 closes the connection with 1007', async () => {
    const { client } = await open();
    client.ws.send(INVALID, { binary: false });
    expect((await client.waitClosed()).code).toBe(1007);
  });

  it('on: the app gets the bytes as they came (echoed back as binary), a close reason is taken as is', async () => {
    const { server, client } = await open({ skipUtf8Validation: true });
    client.ws.send(INVALID, { binary: false });
    const echo = await client.next();
    expect({ isBinary: echo.isBinary, data: echo.data }).toEqual({ isBinary: true, data: INVALID });
    const raw = await rawWebSocket(server.address().port, '/');
    raw.socket.write(clientFrame(0x8, Buffer.concat([Buffer.from([0x03, 0xe8]), INVALID])));
    expect((await raw.nextClose()).code).toBe(1000);
  });
});

describe('maxFrameSize and maxFragments', () => {
  it('maxFrameSize: a message in frames under the limit passes, one frame over it closes with 1009', async () => {
    const { client } = await open({ maxFrameSize: 1000 });
    client.ws.send(Buffer.alloc(800, 1), { fin: false });
    client.ws.send(Buffer.alloc(800, 2), { fin: true });
    expect((await client.next()).data.length).toBe(1600);
    client.ws.send(Buffer.alloc(1001));
    expect((await client.waitClosed()).code).toBe(1009);
  });

  it('maxFragments: a message in that many frames passes, one more closes with 1009', async () => {
    const { client } = await open({ maxFragments: 3 });
    const fragments = (count: number) => {
      for (let i = 0; i < count; i++) client.ws.send(Buffer.from([i]), { fin: i === count - 1 });
    };
    fragments(3);
    expect([...(await client.next()).data]).toEqual([0, 1, 2]);
    fragments(4);
    expect((await client.waitClosed()).code).toBe(1009);
  });
});

/**
 * Asks the app how many of the flood's (binary) messages it was told were dropped; the flood's
 * messages come first. Asked again each second: while the socket is still behind, the drop policy
 * may drop the answer too (the app counts only binary drops, so that changes no count).
 */
async function droppedCount(client: TestClient): Promise<{ dropped: number; delivered: number }> {
  const ask = setInterval(() => client.ws.send('dropped'), 1000);
  client.ws.send('dropped');
  try {
    await waitFor(() => client.received.some((m) => !m.isBinary), 'the count', 20_000);
  } finally {
    clearInterval(ask);
  }
  const reply = client.received.find((m) => !m.isBinary)!;
  return { dropped: Number(reply.data.toString()), delivered: client.received.filter((m) => m.isBinary).length };
}

/** A client whose socket stops reading, flooded with `count` messages of `size` bytes. */
async function stalledClient(options: ListenOptions, count: number, size: number) {
  const { server, client } = await open({ maxBackpressure: 256 * 1024 * 1024, ...options });
  client.socket.pause();
  client.ws.send(`flood:${count}:${size}`);
  return { server, client };
}

describe('slowClientTimeout', () => {
  // 48 MiB: more than loopback's kernel buffers take, so most of it waits in the server's queue.
  const COUNT = 48;
  const SIZE = 1024 * 1024;

  it("'close' policy: a client backlogged past the timeout is closed with 1008", async () => {
    const { client } = await stalledClient({ slowClientTimeout: 0.3, slowClient: 'close' }, COUNT, SIZE);
    // Time for the flood to be queued and the timeout to pass with room to spare: the close is
    // not visible before the client reads again.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    client.socket.resume();
    const closed = await client.waitClosed(10_000);
    expect(closed).toMatchObject({ code: 1008, reason: 'slow client' });
    expect(client.received.length).toBeLessThan(COUNT);
  });

  it("'drop' policy: the backlog is dropped, the app told of each message, the connection stays", async () => {
    const { server, client } = await stalledClient({ slowClientTimeout: 0.3, slowClient: 'drop' }, COUNT, SIZE);
    await waitFor(() => server.stats().workers.some((w) => w.drops > 0), 'the policy to drop the backlog', 10_000);
    client.socket.resume();
    // What was in the kernel and the socket still arrives; then the count of what was dropped.
    const { dropped, delivered } = await droppedCount(client);
    expect(dropped).toBeGreaterThan(0);
    expect(delivered + dropped).toBe(COUNT);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it('off (the default): the backlog waits for the client', async () => {
    const { client } = await stalledClient({}, 16, SIZE);
    await new Promise((resolve) => setTimeout(resolve, 600));
    client.socket.resume();
    await waitFor(() => client.received.length === 16, 'every message', 10_000);
  });
});

describe('dropped', () => {
  it('tells the app of each message the drop policy drops past maxBackpressure', async () => {
    const { server, client } = await stalledClient({ slowClient: 'drop', maxBackpressure: 4 * 1024 * 1024 }, 40, 512 * 1024);
    await waitFor(() => server.stats().workers.some((w) => w.drops > 0), 'the policy to drop past maxBackpressure', 10_000);
    client.socket.resume();
    const { dropped, delivered } = await droppedCount(client);
    expect(dropped).toBeGreaterThan(0);
    expect(delivered + dropped).toBe(40);
  });
});

describe('upgradeAborted', () => {
  it('gets the request and the data when the client leaves while upgrade runs', async () => {
    const server = await start();
    const raw = await RawConnection.open(server.address().port);
    // The upgrade takes a second, so the client is gone well before it ends, even on a loaded machine.
    raw.socket.write(upgradeRequest('/slow-upgrade?ms=1000&token=abc'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    raw.socket.destroy();
    const client = await new TestClient(wsUrl(server)).opened();
    const reported = async (): Promise<unknown[]> => JSON.parse((await client.request('aborted')).data.toString()) as unknown[];
    // upgradeAborted runs when the upgrade ends.
    const deadline = Date.now() + 10_000;
    let aborted = await reported();
    while (aborted.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      aborted = await reported();
    }
    expect(aborted).toEqual([{ url: '/slow-upgrade?ms=1000&token=abc', data: { dropped: 0, token: 'abc' }, reason: 'the client went away during the upgrade' }]);
  });

  it('is not called for a connection that opened', async () => {
    const { client } = await open();
    expect(JSON.parse((await client.request('aborted')).data.toString())).toEqual([]);
  });
});
