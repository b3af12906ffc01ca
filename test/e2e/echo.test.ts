import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { acceptMode, cleanup, fixtureApp, openClient, openShardClients, startServer, waitFor, wsUrl } from './helpers.ts';
import type { TestClient } from './helpers.ts';

const MIB = 1024 * 1024;

/** Bytes the client's TCP socket has read so far (what crossed the wire, after compression). */
const bytesRead = (client: TestClient): number => client.socket.bytesRead;

describe.each([
  { deflate: 'off' as const },
  { deflate: 'shared' as const },
  { deflate: 'dedicated' as const },
])('demo /echo with deflate $deflate', ({ deflate }) => {
  let server: ShardServer;
  beforeAll(async () => {
    server = await startServer(deflate === 'off' ? {} : { deflate });
  });
  afterAll(cleanup);

  describe.each([{ clientDeflate: true }, { clientDeflate: false }])('client perMessageDeflate $clientDeflate', ({ clientDeflate }) => {
    const open = (): Promise<TestClient> => openClient(wsUrl(server, '/echo'), undefined, { perMessageDeflate: clientDeflate });
    const negotiated = deflate !== 'off' && clientDeflate;

    it('negotiates permessage-deflate only when both sides want it', async () => {
      const client = await open();
      if (negotiated) expect(client.ws.extensions).toMatch(/^permessage-deflate/);
      else expect(client.ws.extensions).toBe('');
    });

    it('echoes text as text and binary as binary, empty ones included', async () => {
      const client = await open();
      const text = await client.request('héllo wörld 🌍');
      expect(text.isBinary).toBe(false);
      expect(text.data.toString()).toBe('héllo wörld 🌍');

      const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]);
      const binary = await client.request(bytes);
      expect(binary.isBinary).toBe(true);
      expect(binary.data.equals(bytes)).toBe(true);

      const emptyText = await client.request('');
      expect(emptyText.isBinary).toBe(false);
      expect(emptyText.data.length).toBe(0);

      const emptyBinary = await client.request(Buffer.alloc(0));
      expect(emptyBinary.isBinary).toBe(true);
      expect(emptyBinary.data.length).toBe(0);
    });

    it('echoes a 1 MiB binary message intact', async () => {
      const client = await open();
      const payload = randomBytes(MIB);
      const echo = await client.request(payload, 10_000);
      expect(echo.isBinary).toBe(true);
      expect(echo.data.length).toBe(MIB);
      expect(echo.data.equals(payload)).toBe(true);
    });

    it('echoes a 1 MiB UTF-8 text message intact, compressed on the wire when negotiated', async () => {
      const client = await open();
      const unit = 'ßü 🌍 shardws ';
      const text = unit.repeat(Math.floor(MIB / Buffer.byteLength(unit)));
      const before = bytesRead(client);
      const echo = await client.request(text, 10_000);
      const onWire = bytesRead(client) - before;
      expect(echo.isBinary).toBe(false);
      expect(echo.data.toString()).toBe(text);
      if (negotiated) expect(onWire).toBeLessThan(Buffer.byteLength(text) / 10);
      else expect(onWire).toBeGreaterThan(Buffer.byteLength(text));
    });

    it('keeps many messages from one client in order', async () => {
      const client = await open();
      for (let i = 0; i < 100; i++) client.ws.send(`message ${i} ${'x'.repeat(i * 10)}`);
      await waitFor(() => client.received.length === 100, '100 echoes');
      expect(client.texts).toEqual(Array.from({ length: 100 }, (_, i) => `message ${i} ${'x'.repeat(i * 10)}`));
    });
  });
});

describe('connections spread over the workers', () => {
  afterAll(cleanup);

  it('lands clients on both workers, each of which echoes', async () => {
    const server = await startServer();
    const clients: TestClient[] = [];
    // The kernel's SO_REUSEPORT hash spreads only on average: open more until both have some.
    const spread = (): boolean => server.stats().workers.every((w) => w.connections > 0);
    for (let i = 0; i < 64 && (clients.length < 8 || !spread()); i++) {
      clients.push(await openClient(wsUrl(server, '/echo')));
      await waitFor(() => server.stats().connections === clients.length, `all ${clients.length} connections counted`);
    }
    const workers = server.stats().workers;
    expect(workers).toHaveLength(2);
    expect(workers[0]!.connections).toBeGreaterThan(0);
    expect(workers[1]!.connections).toBeGreaterThan(0);
    const echoes = await Promise.all(clients.map((client, i) => client.request(`client ${i}`)));
    expect(echoes.map((m) => m.data.toString())).toEqual(clients.map((_, i) => `client ${i}`));
    await waitFor(() => server.stats().workers.every((w) => w.messagesIn >= 1 && w.messagesOut >= 1), 'both workers to count traffic');
  });

  // With SO_REUSEPORT the kernel picks the worker and the primary balances nothing.
  it.skipIf(acceptMode === 'reuseport')('the primary sends each new client to the least-loaded worker (transfer mode only)', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo') });
    const url = wsUrl(server, '/');
    const clients = await openShardClients(url, 6);
    expect(clients.map((c) => c.shard)).toEqual([0, 1, 0, 1, 0, 1]);
    const [a, b] = clients.filter((c) => c.shard === 0);
    for (const { client } of [a!, b!]) {
      client.ws.close();
      await client.waitClosed();
    }
    await waitFor(() => server.stats().workers[0]!.connections === 1, 'the two closed connections to be uncounted');
    // Worker 0 now holds 1 and worker 1 holds 3: both newcomers go to worker 0.
    expect((await openShardClients(url, 2)).map((c) => c.shard)).toEqual([0, 0]);
  });
});

describe('demo page over HTTP', () => {
  let server: ShardServer;
  beforeAll(async () => {
    server = await startServer({});
  });
  afterAll(cleanup);

  it('serves the page and an ICO favicon (no 404 in the browser console)', async () => {
    const base = `http://127.0.0.1:${server.address().port}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<link rel="icon" href="/favicon.ico">');
    const icon = await fetch(`${base}/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toBe('image/x-icon');
    const bytes = Buffer.from(await icon.arrayBuffer());
    // ICONDIR: reserved 0, type 1 (icon), one image of 16×16 at 32 bits per pixel.
    expect([...bytes.subarray(0, 8)]).toEqual([0, 0, 1, 0, 1, 0, 16, 16]);
    expect(bytes.readUInt16LE(12)).toBe(32);
    expect(bytes.length).toBe(22 + bytes.readUInt32LE(14));
  });
});
