import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RawConnection, cleanup, fixtureApp, openClient, openClientsOnEachWorker, rawWebSocket, startServer, upgradeRequest, waitFor, withTimeout, wsUrl } from './helpers.ts';
import type { TestClient } from './helpers.ts';

afterEach(cleanup);

function connectError(port: number): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    }),
    'a connection attempt',
  );
}

describe('server.close()', () => {
  it('closes every client on every worker with 1001, resolves, and refuses new connections', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo') });
    const port = server.address().port;
    const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 3);
    await waitFor(() => server.stats().connections === 6, 'all 6 connections counted');

    await withTimeout(server.close(), 'server.close() to resolve', 10_000);
    for (const { client } of clients) {
      const { code, reason } = await client.waitClosed();
      expect(code).toBe(1001);
      expect(reason).toBe('server shutting down');
    }
    expect(await connectError(port)).toBe('ECONNREFUSED');
    const late = await openClient(wsUrl(server, '/')).then(
      () => 'opened',
      (error: Error) => error.message,
    );
    expect(late).toMatch(/ECONNREFUSED/);
  });

  it('resolves even when a peer never answers the close frame, after the grace period', async () => {
    const server = await startServer({ shutdownGrace: 0.3 });
    const raw = await rawWebSocket(server.address().port, '/echo');
    const client: TestClient = await openClient(wsUrl(server, '/echo'));
    await withTimeout(server.close(), 'server.close() to resolve', 10_000);
    // The silent peer got the 1001 close frame, then lost its connection when the grace ran out.
    expect((await raw.nextClose()).code).toBe(1001);
    await raw.waitEnded();
    expect((await client.waitClosed()).code).toBe(1001);
  });

  it('resolves even when a peer refused with 503 keeps its side of the connection open', async () => {
    const server = await startServer({ maxConnections: 1 });
    const client = await openClient(wsUrl(server, '/echo'));
    const refused = await RawConnection.open(server.address().port, { allowHalfOpen: true });
    expect((await refused.request(upgradeRequest('/echo'))).status).toBe(503);
    await refused.waitEnded();
    expect(refused.closed).toBe(false);
    await withTimeout(server.close(), 'server.close() to resolve', 10_000);
    expect((await client.waitClosed()).code).toBe(1001);
  });
});
