/** `appOptions`: configuration handed to the app's `start` in every worker. */
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, fixtureApp, openClient, startServer, wsUrl } from './helpers.ts';

afterAll(cleanup);

describe('appOptions', () => {
  it("reaches start() in every worker, each worker with its own copy", async () => {
    const appOptions = { greeting: 'hello', rooms: ['a', 'b'] };
    const server = await startServer({ app: fixtureApp('app-options'), appOptions });
    // Connections until both workers answered (SO_REUSEPORT mode spreads them by hash, not in turn).
    const seen = new Map<number, unknown>();
    for (let i = 0; i < 32 && seen.size < 2; i++) {
      const client = await openClient(wsUrl(server, '/'));
      const greeting = JSON.parse(await client.nextText()) as { worker: number; options: unknown };
      seen.set(greeting.worker, greeting.options);
      client.ws.close();
    }
    expect([...seen.keys()].sort()).toEqual([0, 1]);
    for (const options of seen.values()) expect(options).toEqual(appOptions);
  });

  it('is refused at listen() when it cannot cross to a worker', async () => {
    await expect(startServer({ app: fixtureApp('app-options'), appOptions: { callback: () => 1 } })).rejects.toThrow(/^option appOptions must be plain data/);
  });
});
