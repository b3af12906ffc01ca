/**
 * Changes without dropping anyone, over real sockets with two workers: a hung worker gets no new
 * connections, maxLifetime closes old connections with 1001, reload() swaps the app's handlers
 * for open connections (data and subscriptions kept) or changes nothing when the new module is
 * broken, restartWorkers() replaces one worker at a time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptMode, ask, cleanup, fixtureApp, openClient, openClientsOnEachWorker, openShardClient, startServer, waitFor, wsUrl } from './helpers.ts';

const dirs: string[] = [];
afterEach(async () => {
  await cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('a hung worker', () => {
  // The primary places connections only when it transfers them; under SO_REUSEPORT the kernel does.
  it.skipIf(acceptMode === 'reuseport')('gets no new connections while its heartbeat is late, long before the watchdog replaces it (transfer mode)', async () => {
    const server = await startServer({ app: fixtureApp('addressable'), heartbeatTimeout: 60 });
    const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 1);
    const stuck = clients.find((c) => c.shard === 1)!;
    stuck.client.ws.send('hang:6000');
    // Its heartbeat is late a second after the hang begins; from then on every new connection
    // goes to worker 0. Two seconds leave the hang a second to begin, and four to open the clients in.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const landed: number[] = [];
    for (let i = 0; i < 8; i++) landed.push((await openShardClient(wsUrl(server, '/'), undefined)).shard);
    expect(landed).toEqual(new Array(8).fill(0));
    expect(server.stats().restarts).toBe(0);
  });
});

describe('maxLifetime', () => {
  it('closes a connection older than it with 1001, and the client reconnects', async () => {
    const server = await startServer({ app: fixtureApp('addressable'), maxLifetime: 1 });
    const client = await openClient(wsUrl(server, '/'));
    const young = await openClient(wsUrl(server, '/'));
    expect(await client.waitClosed(5000)).toEqual({ code: 1001, reason: 'connection lifetime reached' });
    expect((await young.waitClosed(5000)).code).toBe(1001);
    const again = await openClient(wsUrl(server, '/'));
    expect(await ask(again, 'still', 'still')).toBe('still');
  });

  it('is off by default', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    expect(server.config.maxLifetime).toBe(0);
  });
});

/** An app in a directory of its own, as a user's: `app.ts` imports VERSION from `version.ts`. */
function appDir(): { readonly app: string; readonly version: (v: string) => void; readonly write: (source: string) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'shardws-reload-'));
  dirs.push(dir);
  const app = join(dir, 'app.ts');
  const source = (extra: string): string => `
    import { VERSION } from './version.ts';
    let started = 0;
    export default {
      start() { started++; },
      upgrade() { return { data: { n: Math.floor(Math.random() * 1e9) } }; },
      open(ws) { ws.subscribe('room'); ws.send(JSON.stringify({ hello: ws.shard.id, n: ws.data.n })); },
      message(ws, data) {
        const text = data.toString();
        if (text === 'who') ws.send('who:' + VERSION + ':' + ws.data.n + ':' + ws.isSubscribed('room') + ':' + started + ${extra});
        else if (text === 'pub') ws.publish('room', 'pub:' + VERSION);
      },
    };
  `;
  writeFileSync(join(dir, 'version.ts'), "export const VERSION = 'v1';\n");
  writeFileSync(app, source("''"));
  return {
    app,
    version: (v) => writeFileSync(join(dir, 'version.ts'), `export const VERSION = '${v}';\n`),
    write: (text) => writeFileSync(app, text),
  };
}

describe('server.reload()', () => {
  it('switches every worker\'s open and new connections to the new module, keeping ws.data and subscriptions', async () => {
    const files = appDir();
    const server = await startServer({ app: files.app });
    const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 1);
    const before = await Promise.all(clients.map((c) => ask(c.client, 'who', 'who:')));
    for (const answer of before) expect(answer).toMatch(/^who:v1:\d+:true:1$/);

    // A file the app imports changed: the reload reads it anew too.
    files.version('v2');
    await server.reload();
    for (const [i, c] of clients.entries()) {
      const n = before[i]!.split(':')[2];
      // Same connection, same data, same subscription, new module (its own `started`).
      expect(await ask(c.client, 'who', 'who:')).toBe(`who:v2:${n}:true:1`);
    }
    // Pub/sub between the workers is untouched.
    clients[0]!.client.ws.send('pub');
    await waitFor(() => clients[1]!.client.texts.includes('pub:v2'), 'the publish under the new module');
    const late = await openClient(wsUrl(server, '/'));
    expect(await ask(late, 'who', 'who:')).toMatch(/^who:v2:\d+:true:1$/);
    expect(clients.every((c) => c.client.closeEvent === null)).toBe(true);
  });

  it('changes nothing when the new module fails to load, and says why', async () => {
    const files = appDir();
    const server = await startServer({ app: files.app });
    const client = await openClient(wsUrl(server, '/'));
    files.write('export default { message( { };\n');
    await expect(server.reload()).rejects.toThrow(/reload failed, nothing changed: worker \d: .*SyntaxError|reload failed, nothing changed: worker \d: .*(Unexpected|Expected)/);
    expect(await ask(client, 'who', 'who:')).toMatch(/^who:v1:/);
    // A start that throws fails the reload too, and the new instance is never used.
    files.write("export default { start() { throw new Error('no database'); }, message(ws) { ws.send('who:broken'); } };\n");
    await expect(server.reload()).rejects.toThrow(/no database/);
    expect(await ask(client, 'who', 'who:')).toMatch(/^who:v1:/);
    expect(client.closeEvent).toBeNull();
  });
});

describe('server.restartWorkers()', () => {
  it('replaces one worker at a time, closing its connections with 1001 while the other serves', async () => {
    const server = await startServer({ app: fixtureApp('addressable') });
    const clients = await openClientsOnEachWorker(wsUrl(server, '/'), 2);
    const on = (worker: number) => clients.filter((c) => c.shard === worker).map((c) => c.client);
    const restarting = server.restartWorkers({ spread: 0.3 });
    // Worker 0 goes first: its clients are closed while worker 1's are still served.
    for (const client of on(0)) expect(await client.waitClosed(10_000)).toEqual({ code: 1001, reason: 'worker restarting' });
    for (const client of on(1)) expect(client.closeEvent).toBeNull();
    await restarting;
    for (const client of on(1)) expect((await client.waitClosed()).code).toBe(1001);
    expect(server.stats().restarts).toBe(2);
    // Both replacements serve.
    const fresh = await openClientsOnEachWorker(wsUrl(server, '/'), 1);
    for (const c of fresh) expect(await ask(c.client, 'ok', 'ok')).toBe('ok');
  });
});
