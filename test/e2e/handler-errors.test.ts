import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fixtureApp, openClientsOnEachWorker, startServer, waitFor, wsUrl } from './helpers.ts';

afterEach(cleanup);

describe('an app handler that throws', () => {
  it('closes only its own connection with 1011; the worker and its other connections carry on', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo') });
    const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 2);
    const victim = clients[0]!;
    const neighbours = clients.filter((c) => c !== victim && c.shard === victim.shard);
    const others = clients.filter((c) => c.shard !== victim.shard);

    victim.client.ws.send('boom');
    const { code, reason } = await victim.client.waitClosed();
    expect(code).toBe(1011);
    expect(reason).toBe('internal error');

    for (const [i, { client }] of [...neighbours, ...others].entries()) {
      expect((await client.request(`after boom ${i}`)).data.toString()).toBe(`after boom ${i}`);
      expect(client.closeEvent).toBeNull();
    }
    await waitFor(() => server.stats().workers[victim.shard]!.connections === neighbours.length, 'the victim to be uncounted');
    expect(server.stats().restarts).toBe(0);
    // The same worker (and the other) accepts and serves new connections.
    const more = await openClientsOnEachWorker(wsUrl(server, '/'), 1);
    for (const { client } of more) expect((await client.request('new')).data.toString()).toBe('new');
    expect(server.stats().restarts).toBe(0);
  });
});
