/**
 * `accept: 'reuseport'` where Node could transfer sockets too: every worker accepts on the port
 * and the primary holds no listener. (On Node < 26.6 it is the only mode, and `npm run
 * test:node24` runs the whole end-to-end suite in it; supervision.test.ts runs in both modes.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../../src/main/listen.ts';
import { RawConnection, acceptMode, cleanup, fixtureApp, openClient, openClientsOnEachWorker, startServer, upgradeRequest, waitFor, withTimeout, wsUrl } from './helpers.ts';

afterEach(cleanup);

/** Listening TCP servers of this thread (the primary's; the workers' are their own threads'). */
const listeners = (): number => process.getActiveResourcesInfo().filter((type) => type === 'TCPServerWrap').length;

describe.skipIf(process.platform !== 'linux')("accept: 'reuseport'", () => {
  it('has each worker accept on the port while the primary listens on nothing; transfer mode (where Node has it) keeps one listener', async () => {
    const before = listeners();
    const reuse = await startServer({ app: fixtureApp('shard-echo'), accept: 'reuseport' });
    expect(reuse.accept).toBe('reuseport');
    // The primary bound the port first to learn it (port 0), then closed its listener.
    await waitFor(() => listeners() === before, "the primary's listener to be closed");
    // The kernel spreads by a hash of the addresses: both workers get clients, and serve them.
    const clients = await openClientsOnEachWorker(wsUrl(reuse, '/'), 2);
    for (const [i, { client }] of clients.entries()) expect((await client.request(`on ${i}`)).data.toString()).toBe(`on ${i}`);
    expect(reuse.stats().connections).toBe(4);
    if (acceptMode !== 'transfer') return;
    const transfer = await startServer({ app: fixtureApp('shard-echo'), accept: 'transfer' });
    expect(transfer.accept).toBe('transfer');
    expect(listeners()).toBe(before + 1);
  });

  it('counts maxConnections over every worker: the next socket gets 503 from whichever worker took it', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo'), accept: 'reuseport', maxConnections: 3 });
    const held = await Promise.all([0, 1, 2].map(() => openClient(wsUrl(server, '/'))));
    for (let i = 0; i < 6; i++) {
      const raw = await RawConnection.open(server.address().port);
      expect((await raw.request(upgradeRequest('/'))).status).toBe(503);
      raw.socket.destroy();
    }
    expect(server.stats().refused).toBe(6);
    for (const client of held) expect(JSON.parse(await client.nextText())).toHaveProperty('hello');
  });

  it('admits exactly maxConnections of a burst that lands on both workers at once', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo'), accept: 'reuseport', maxConnections: 5 });
    const port = server.address().port;
    const burst = await Promise.all(Array.from({ length: 24 }, () => RawConnection.open(port)));
    const answers = await withTimeout(
      Promise.all(burst.map((raw) => raw.request(upgradeRequest('/')))),
      'every socket of the burst to be answered',
      10_000,
    );
    expect(answers.filter((head) => head.status === 101)).toHaveLength(5);
    expect(answers.filter((head) => head.status === 503)).toHaveLength(19);
    expect(server.stats().refused).toBe(19);
  });

  it('refuses a Unix socket path, which only socket transfer serves', async () => {
    await expect(listen({ path: '/tmp/shardws-reuseport.sock', accept: 'reuseport', logLevel: 'silent', workers: 1 })).rejects.toThrow(
      "listen({ path }) takes accept: 'transfer'",
    );
  });
});
