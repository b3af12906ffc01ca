import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { acceptMode, cleanup, clientOn, fixtureApp, openClientsOnEachWorker, openShardClients, startServer, waitFor, wsUrl } from './helpers.ts';
import type { ShardClient } from './helpers.ts';

afterEach(cleanup);

/** Breaks the worker behind one client with `command`; checks only that worker's clients suffer. */
async function breakOneWorker(server: ShardServer, command: string, timeout: number): Promise<void> {
  const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 2);
  const victims = clients.filter((c) => c.shard === 1);
  const survivors = clients.filter((c) => c.shard === 0);
  await waitFor(() => server.stats().workers[1]!.connections === victims.length, 'the victims to be counted');

  victims[0]!.client.ws.send(command);
  // The other worker serves on while this one dies (or spins until the watchdog ends it).
  for (const survivor of survivors) expect((await survivor.client.request('meanwhile')).data.toString()).toBe('meanwhile');
  for (const victim of victims) {
    const { code } = await victim.client.waitClosed(timeout);
    expect(code).toBe(1006);
  }
  for (const [i, survivor] of survivors.entries()) {
    const echo = await survivor.client.request(`after the failure ${i}`);
    expect(echo.data.toString()).toBe(`after the failure ${i}`);
    expect(survivor.client.closeEvent).toBeNull();
  }

  await waitFor(() => server.stats().restarts === 1, 'the worker to be restarted', timeout);
  const replacement = await clientOn(server, 1);
  const echo = await replacement.client.request('on the replacement');
  expect(echo.data.toString()).toBe('on the replacement');
  await waitFor(() => server.stats().workers[1]!.connections === 1, 'the replacement to count only its own connection');
  expect(server.stats().restarts).toBe(1);
  // The survivors never noticed.
  for (const survivor of survivors) expect((await survivor.client.request('still fine')).data.toString()).toBe('still fine');
}

// Both ways connections reach the workers, where this Node and platform have both: a replacement
// must take connections again whether the primary hands them over or it accepts them itself.
const MODES = acceptMode === 'transfer' && process.platform === 'linux' ? (['transfer', 'reuseport'] as const) : [acceptMode];

describe.each(MODES)('worker supervision (accept: %s)', (accept) => {
  it('restarts a worker that exits, closing only its own connections', async () => {
    const server = await startServer({ accept, app: fixtureApp('shard-echo') });
    await breakOneWorker(server, 'exit', 5000);
  });

  it('restarts a worker killed by an uncaught exception, closing only its own connections', async () => {
    const server = await startServer({ accept, app: fixtureApp('shard-echo') });
    await breakOneWorker(server, 'uncaught', 5000);
  });

  it('replaces a hung worker through the heartbeat watchdog, leaving the other worker alone', async () => {
    // 2 s: a surviving worker's beat, late by a stall of the loaded machine, stays well inside it.
    const server = await startServer({ accept, app: fixtureApp('shard-echo'), heartbeatTimeout: 2 });
    await breakOneWorker(server, 'hang', 10_000);
  });

  it('keeps counting maxConnections right while a crashed worker is being restarted', async () => {
    const server = await startServer({ accept, app: fixtureApp('shard-echo'), maxConnections: 4 });
    // Every slot taken, wherever the connections landed (extras would be refused, not closed).
    const clients = await openShardClients(wsUrl(server, '/'), 4);
    const victims = clients.filter((c) => c.shard === clients[0]!.shard);
    victims[0]!.client.ws.send('exit');
    for (const victim of victims) expect((await victim.client.waitClosed()).code).toBe(1006);
    await waitFor(() => server.stats().restarts === 1, 'the exit to be noticed');
    // The dead worker's slots are free again: the sockets it took must not count any more.
    const replacements = await openShardClients(wsUrl(server, '/'), victims.length);
    expect(replacements).toHaveLength(victims.length);
    expect(server.stats().refused).toBe(0);
  });
});
