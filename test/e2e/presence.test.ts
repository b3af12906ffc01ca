/**
 * Presence and addressable connections on one server with two workers, over real sockets:
 * subscriberCount counts every worker, the subscription hook sees those counts, ws.id and
 * tags reach connections on the other worker, connections() lists a worker's own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { ask, cleanup, clientOn, fixtureApp, openClientsOnEachWorker, startServer, waitFor, wsUrl } from './helpers.ts';
import type { ShardClient, TestClient } from './helpers.ts';

afterEach(cleanup);

interface Peer extends ShardClient {
  readonly id: string;
}

/** `perWorker` clients on each of two workers, with their ids from the greeting. */
async function peers(server: ShardServer, perWorker = 1): Promise<Peer[]> {
  const clients = await openClientsOnEachWorker(wsUrl(server, '/'), perWorker);
  return clients.map((c) => ({ ...c, id: (JSON.parse(c.client.received[0]!.data.toString()) as { id: string }).id }));
}

const texts = (client: TestClient): string[] => client.received.map((m) => m.data.toString());

describe('presence across workers', () => {
  it('counts every worker\'s subscribers, exact once the subscribe has returned, in the app and on the server', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    const [a, b] = await peers(server);
    expect(a!.shard).not.toBe(b!.shard);

    // The subscription hook runs after the count changed: its answer arrives before the count is asked.
    expect(await ask(a!.client, 'sub:room', 'subscription:room:')).toBe('subscription:room:1:0');
    expect(await ask(b!.client, 'sub:room', 'subscription:room:')).toBe('subscription:room:2:1');
    expect(await ask(a!.client, 'count:room', 'count:room:')).toBe('count:room:2');
    expect(await ask(b!.client, 'count:room', 'count:room:')).toBe('count:room:2');
    expect(server.subscriberCount('room')).toBe(2);
    expect(await server.subscriberCount('room', { scope: 'cluster' })).toBe(2);
    expect(server.subscriberCount('other')).toBe(0);

    expect(await ask(a!.client, 'unsub:room', 'subscription:room:')).toBe('subscription:room:1:2');
    expect(await ask(b!.client, 'count:room', 'count:room:')).toBe('count:room:1');

    // A close leaves every topic, and the hook says so (to the closing connection, which no longer reads).
    b!.client.ws.close();
    await b!.client.waitClosed();
    await waitFor(() => server.subscriberCount('room') === 0, 'the closed subscriber to be counted out');
    expect(await ask(a!.client, 'count:room', 'count:room:')).toBe('count:room:0');
  });

  it('forgets the subscribers of a worker that died, and counts its replacement\'s', async () => {
    // 2 s: the surviving worker's beat, late by a stall of the loaded machine, stays well inside it.
    const server = await startServer({ app: fixtureApp('addressable'), heartbeatTimeout: 2 });
    const [a, b] = await peers(server);
    await ask(a!.client, 'sub:room', 'subscription:');
    await ask(b!.client, 'sub:room', 'subscription:');
    expect(server.subscriberCount('room')).toBe(2);
    // Blocked past heartbeatTimeout, the worker is terminated mid-loop: no close handler runs
    // there, and only the primary's sweep of its column takes its subscriber out.
    b!.client.ws.send('hang:30000');
    await waitFor(() => server.stats().restarts === 1, 'the hung worker to be replaced', 10_000);
    await waitFor(() => server.subscriberCount('room') === 1, 'the dead worker\'s subscriber to be counted out');
    expect(await ask(a!.client, 'count:room', 'count:room:')).toBe('count:room:1');
    const replacement = await clientOn(server, b!.shard);
    expect(await ask(replacement.client, 'sub:room', 'subscription:room:')).toBe('subscription:room:2:1');
  });

  it('counts many topics and connections the same from every worker while they churn', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    const clients = await peers(server, 3);
    for (const [i, c] of clients.entries()) {
      for (let t = 0; t <= i; t++) c.client.ws.send(`sub:t${t}`);
    }
    // Client i subscribes t0..ti: topic t has clients t..5, 6 - t subscribers.
    await waitFor(() => server.subscriberCount('t0') === 6 && server.subscriberCount('t5') === 1, 'all subscriptions');
    for (const c of clients) {
      for (let t = 0; t < 6; t++) expect(await ask(c.client, `count:t${t}`, `count:t${t}:`)).toBe(`count:t${t}:${6 - t}`);
    }
    for (const c of clients) c.client.ws.send('unsub:t0');
    await waitFor(() => server.subscriberCount('t0') === 0, 't0 to empty');
    expect(server.subscriberCount('t1')).toBe(5);
  });
});

describe('addressable connections', () => {
  it('gives every connection a distinct id and sends to it on the other worker by id', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    const [a, b] = await peers(server);
    expect(a!.id).not.toBe(b!.id);
    expect(await ask(a!.client, `send:${b!.id}:hello b`, 'sent:')).toBe('sent:forwarded');
    await waitFor(() => texts(b!.client).includes('hello b'), 'the message at b');
    // To itself: done on the spot, with the connection's own status.
    expect(await ask(a!.client, `send:${a!.id}:to myself`, 'sent:')).toBe('sent:written');
    await waitFor(() => texts(a!.client).includes('to myself'), 'the message to itself');
    // An id that names no open connection.
    expect(await ask(a!.client, 'send:nonsense:x', 'sent:')).toBe('sent:gone');
    const wrongServer = `zz${b!.id.slice(b!.id.indexOf('.'))}`;
    expect(await ask(a!.client, `send:${wrongServer}:x`, 'sent:')).toBe('sent:gone');

    // From the server object.
    expect(server.send(b!.id, 'from the server')).toBe('forwarded');
    await waitFor(() => texts(b!.client).includes('from the server'), 'the server\'s message at b');
    expect(server.send('nonsense', 'x')).toBe('gone');
  });

  it('closes a connection on the other worker by id, with the code and reason given', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    const clients = await peers(server);
    const a = clients[0]!;
    const victim = clients.find((p) => p.shard !== a.shard)!;
    expect(await ask(a.client, `close:${victim.id}`, 'closed:')).toBe('closed:forwarded');
    expect(await victim.client.waitClosed()).toEqual({ code: 4001, reason: 'revoked' });
    // Its own worker answers for its own ids without asking anyone.
    expect(await ask(a.client, `send:${a.id.replace(/[^.]+$/, 'zzzz')}:x`, 'sent:')).toBe('sent:gone');
    const c = (await peers(server))[0]!;
    expect(server.closeConnection(c.id, 4003, 'by the server')).toBe('forwarded');
    expect(await c.client.waitClosed()).toEqual({ code: 4003, reason: 'by the server' });
  });

  it('sends to and closes every connection with a tag, on both workers, and only those', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    const clients = await peers(server, 2);
    const tagged = [clients.find((c) => c.shard === 0)!, clients.find((c) => c.shard === 1)!];
    const others = clients.filter((c) => !tagged.includes(c));
    for (const c of tagged) await ask(c.client, 'tag:user-7', 'tagged:');
    await ask(others[0]!.client, 'tag:user-8', 'tagged:');

    others[0]!.client.ws.send('sendto:user-7:for user 7');
    for (const c of tagged) await waitFor(() => texts(c.client).includes('for user 7'), 'the tagged message');
    server.sendTo('user-7', 'from the server to user 7');
    for (const c of tagged) await waitFor(() => texts(c.client).includes('from the server to user 7'), 'the server\'s tagged message');
    for (const c of others) expect(texts(c.client).filter((t) => t.includes('user 7'))).toEqual([]);

    const listed = JSON.parse(await ask(tagged[0]!.client, 'conns', '[')) as { id: string; tags: string[]; topics: string[]; remoteAddress: string; bufferedAmount: number; openedAt: number }[];
    const self = listed.find((c) => c.id === tagged[0]!.id)!;
    expect(self).toMatchObject({ tags: ['user-7'], topics: [], remoteAddress: '127.0.0.1', bufferedAmount: 0 });
    expect(self.openedAt).toBeLessThanOrEqual(Date.now());
    // Only this worker's connections.
    expect(listed.map((c) => c.id).sort()).toEqual(clients.filter((c) => c.shard === tagged[0]!.shard).map((c) => c.id).sort());

    // Untagged connections are not reached.
    await ask(tagged[1]!.client, 'untag:user-7', 'untagged:');
    others[0]!.client.ws.send('closeall:user-7');
    expect(await tagged[0]!.client.waitClosed()).toEqual({ code: 4002, reason: 'signed out' });
    expect(tagged[1]!.client.closeEvent).toBeNull();
    server.closeAll('user-8', 4002, 'signed out');
    expect((await others[0]!.client.waitClosed()).code).toBe(4002);
    expect(await ask(tagged[1]!.client, 'still here', 'still')).toBe('still here');
  });
});
