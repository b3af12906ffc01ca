import { existsSync, readdirSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { get } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { RawConnection, TestClient, cleanup, fixtureApp, openClient, startServer, upgradeRequest, waitFor, withTimeout, wsUrl } from './helpers.ts';

afterEach(cleanup);

const startGate = (options: Parameters<typeof startServer>[0] = {}): Promise<ShardServer> =>
  startServer({ app: fixtureApp('upgrade-gate'), ...options });

interface Refusal {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** Opens a ws client that must be refused; resolves with the HTTP response it got instead. */
function refusal(url: string, protocols?: string[], options?: ConstructorParameters<typeof TestClient>[2]): Promise<Refusal> {
  const client = new TestClient(url, protocols, options);
  return withTimeout(
    new Promise<Refusal>((resolve, reject) => {
      client.ws.once('open', () => reject(new Error('the upgrade was accepted')));
      client.ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          // With a listener, ws leaves the refused socket to us.
          res.socket.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      });
    }),
    'the refusal',
  );
}

/** A plain HTTP GET (no upgrade). */
function httpGet(server: ShardServer, path: string): Promise<Refusal> {
  return withTimeout(
    new Promise<Refusal>((resolve, reject) => {
      get({ host: '127.0.0.1', port: server.address().port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      }).on('error', reject);
    }),
    'an HTTP response',
  );
}

/** Sends a hand-written request over TCP and returns the response head. */
async function rawRequest(server: ShardServer, request: string): Promise<{ status: number; headers: Readonly<Record<string, string>> }> {
  const raw = await RawConnection.open(server.address().port);
  const head = await raw.request(request);
  await raw.waitEnded();
  return head;
}

describe('the app upgrade handler', () => {
  it('picks a subprotocol, adds response headers and attaches data that open sees', async () => {
    const server = await startGate();
    const client = new TestClient(wsUrl(server, '/room?token=secret'), ['a', 'chat']);
    const upgradeHeaders = new Promise<IncomingMessage['headers']>((resolve) => client.ws.once('upgrade', (res) => resolve(res.headers)));
    await client.opened();
    const headers = await upgradeHeaders;
    expect(client.ws.protocol).toBe('chat');
    expect(headers['sec-websocket-protocol']).toBe('chat');
    const opened = JSON.parse(await client.nextText()) as { data: unknown; protocol: string; shard: number };
    expect(opened.data).toEqual({ user: 'alice', path: '/room', async: false });
    expect(opened.protocol).toBe('chat');
    expect(headers['x-shard']).toBe(String(opened.shard));
    expect((await client.request('after upgrade')).data.toString()).toBe('after upgrade');
  });

  it('refuses with the status and headers the app returns', async () => {
    const server = await startGate();
    const response = await refusal(wsUrl(server, '/room'));
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
    expect(response.body).toBe('token required');
  });

  it('waits for an async upgrade handler', async () => {
    const server = await startGate();
    const client = await openClient(wsUrl(server, '/async?token=secret'));
    const opened = JSON.parse(await client.nextText()) as { data: unknown };
    expect(opened.data).toEqual({ user: 'alice', path: '/async', async: true });
    expect((await refusal(wsUrl(server, '/async'))).status).toBe(401);
  });

  it('answers 500 when the upgrade handler throws, and keeps serving', async () => {
    const server = await startGate();
    expect((await refusal(wsUrl(server, '/throw?token=secret'))).status).toBe(500);
    expect((await refusal(wsUrl(server, '/throw?token=secret'))).status).toBe(500);
    const client = await openClient(wsUrl(server, '/room?token=secret'));
    expect(JSON.parse(await client.nextText())).toMatchObject({ data: { user: 'alice' } });
    expect(server.stats().restarts).toBe(0);
  });
});

describe('plain HTTP requests', () => {
  it("go to the app's http handler", async () => {
    const server = await startGate();
    const response = await httpGet(server, '/hello');
    expect(response.status).toBe(200);
    expect(response.body).toBe('hello over http');
    expect((await httpGet(server, '/elsewhere')).status).toBe(404);
  });

  it('get 426 Upgrade Required without an http handler', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo') });
    const response = await httpGet(server, '/');
    expect(response.status).toBe(426);
    expect(response.headers.upgrade).toBe('websocket');
  });
});

describe('malformed upgrade requests', () => {
  it('answers 426 with Sec-WebSocket-Version: 13 to another protocol version', async () => {
    const server = await startGate();
    const head = await rawRequest(server, upgradeRequest('/room?token=secret', { 'Sec-WebSocket-Version': '8' }));
    expect(head.status).toBe(426);
    expect(head.headers['sec-websocket-version']).toBe('13');
  });

  it('answers 400 to a key that is not base64 of 16 bytes, and to a missing key', async () => {
    const server = await startGate();
    expect((await rawRequest(server, upgradeRequest('/room?token=secret', { 'Sec-WebSocket-Key': 'not-a-key' }))).status).toBe(400);
    expect((await rawRequest(server, upgradeRequest('/room?token=secret', { 'Sec-WebSocket-Key': null }))).status).toBe(400);
  });

  it('answers 405 to an upgrade with another method', async () => {
    const server = await startGate();
    const head = await rawRequest(server, upgradeRequest('/room?token=secret', {}, 'POST'));
    expect(head.status).toBe(405);
    expect(head.headers.allow).toBe('GET');
  });

  it('answers 400 to a request line that is not HTTP', async () => {
    const server = await startGate();
    expect((await rawRequest(server, 'HELLO\r\n\r\n')).status).toBe(400);
  });
});

describe('the origins option', () => {
  it('refuses an unlisted Origin with 403 and accepts a listed one', async () => {
    const server = await startGate({ origins: ['https://good.example'] });
    expect((await refusal(wsUrl(server, '/room?token=secret'), undefined, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await refusal(wsUrl(server, '/room?token=secret'))).status).toBe(403);
    const client = await openClient(wsUrl(server, '/room?token=secret'), undefined, { origin: 'https://good.example' });
    expect(JSON.parse(await client.nextText())).toMatchObject({ data: { user: 'alice' } });
  });
});

describe('the maxConnections option', () => {
  it('refuses the third connection with 503 while the first two keep working', async () => {
    const server = await startGate({ maxConnections: 2 });
    const first = await openClient(wsUrl(server, '/room?token=secret'));
    const second = await openClient(wsUrl(server, '/room?token=secret'));
    const third = await refusal(wsUrl(server, '/room?token=secret'));
    expect(third.status).toBe(503);
    expect(server.stats().refused).toBe(1);
    for (const client of [first, second]) {
      expect(JSON.parse(await client.nextText())).toMatchObject({ data: { user: 'alice' } });
      expect((await client.request('still open')).data.toString()).toBe('still open');
    }
    // A slot frees up when a connection closes.
    first.ws.close();
    await first.waitClosed();
    await waitFor(() => server.stats().connections === 1, 'the closed connection to be uncounted');
    const fourth = await openClient(wsUrl(server, '/room?token=secret'));
    expect(JSON.parse(await fourth.nextText())).toMatchObject({ data: { user: 'alice' } });
  });

  it.skipIf(!existsSync('/proc/self/fd'))('closes each refused socket once its peer closes (no descriptor leak)', async () => {
    const server = await startGate({ maxConnections: 1 });
    await openClient(wsUrl(server, '/room?token=secret'));
    const descriptors = (): number => readdirSync('/proc/self/fd').length;
    const before = descriptors();
    for (let i = 0; i < 30; i++) {
      const raw = await RawConnection.open(server.address().port);
      expect((await raw.request(upgradeRequest('/room?token=secret'))).status).toBe(503);
      // A well-behaved peer: it reads the refusal and closes its side in turn.
      await waitFor(() => raw.closed, 'the refused connection to close');
    }
    await waitFor(() => descriptors() < before + 10, 'the server to close the refused sockets');
    expect(server.stats().refused).toBe(30);
  });

  it('admits exactly maxConnections of a burst, counting sockets on their way to a worker and upgrades in progress', async () => {
    const server = await startGate({ maxConnections: 2 });
    const burst = Array.from({ length: 4 }, () => new TestClient(wsUrl(server, '/async?token=secret')));
    const outcomes = await Promise.all(
      burst.map((client) =>
        withTimeout(
          new Promise<string>((resolve) => {
            client.ws.once('open', () => resolve('open'));
            client.ws.once('unexpected-response', (_req, res) => {
              res.socket.destroy();
              resolve(String(res.statusCode));
            });
          }),
          'the burst to be answered',
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'open')).toHaveLength(2);
    expect(outcomes.filter((o) => o === '503')).toHaveLength(2);
  });
});
