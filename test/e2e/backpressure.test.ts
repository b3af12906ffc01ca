import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import type { Priority, SendStatus } from '../../src/shared/app.ts';
import { cleanup, fixtureApp, openShardClients, startServer, waitFor, wsUrl } from './helpers.ts';
import type { ShardClient, TestClient } from './helpers.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const SIZE = 64 * KIB;

afterEach(cleanup);

interface Report {
  readonly floods: number;
  readonly flood: (Record<Priority, Record<SendStatus, number>> & { bufferedAfter: number }) | null;
  readonly drains: number;
}

/** Two clients on the same worker: one to flood, one to watch (three clients over two workers share one). */
async function pairOnOneWorker(server: ShardServer): Promise<[ShardClient, ShardClient]> {
  const clients = await openShardClients(wsUrl(server, '/'), 3);
  for (const a of clients) {
    const b = clients.find((c) => c !== a && c.shard === a.shard);
    if (b !== undefined) return [a, b];
  }
  throw new Error('no two clients on one worker');
}

/** Asks the worker, over the watching connection, until it has run `floods` floods. */
async function report(observer: TestClient, floods: number): Promise<Report> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const answer = JSON.parse((await observer.request('report')).data.toString()) as Report;
    if (answer.floods >= floods) return answer;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the worker never reported flood ${floods}`);
}

const initials = (client: TestClient, initial: string): number =>
  client.received.filter((m) => m.isBinary && m.data[0] === initial.charCodeAt(0)).length;

describe('a client that stops reading', () => {
  it("is closed with 1008 under slowClient 'close', with sends dropped past maxBackpressure", async () => {
    const server = await startServer({ app: fixtureApp('flood'), slowClient: 'close', maxBackpressure: MIB });
    const [flooded, observer] = await pairOnOneWorker(server);
    flooded.client.socket.pause();
    flooded.client.ws.send(`flood:normal:2000:${SIZE}`);

    const { flood } = await report(observer.client, 1);
    const accepted = flood!.normal.written + flood!.normal.buffered;
    // Memory stays bounded: past the limit everything is dropped, nothing piles up.
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThanOrEqual(MIB / SIZE + 1);
    expect(flood!.normal.dropped).toBe(2000 - accepted);
    expect(flood!.bufferedAfter).toBeLessThanOrEqual(MIB);
    expect(server.stats().workers[flooded.shard]!.drops).toBeGreaterThan(0);

    // The other connection on the same worker is served as usual meanwhile.
    expect((await observer.client.request('echo while flooding')).data.toString()).toBe('echo while flooding');

    flooded.client.socket.resume();
    const { code } = await flooded.client.waitClosed();
    expect(code).toBe(1008);
    expect(initials(flooded.client, 'n')).toBeLessThanOrEqual(accepted);
    expect((await observer.client.request('echo after the close')).data.toString()).toBe('echo after the close');
  });

  it("drops low-priority messages first under slowClient 'drop', keeps high ones, and drains after resuming", async () => {
    const server = await startServer({ app: fixtureApp('flood'), slowClient: 'drop', maxBackpressure: MIB });
    const [flooded, observer] = await pairOnOneWorker(server);
    flooded.client.socket.pause();

    // Flood in rounds until the kernel's buffers are full too and nothing more is accepted.
    let rounds = 0;
    let full: Report | null = null;
    for (let round = 1; round <= 30 && full === null; round++) {
      flooded.client.ws.send(`flood:low:40:${SIZE}`);
      const answer = await report(observer.client, round);
      rounds = round;
      if (answer.flood!.low.written === 0 && answer.flood!.low.buffered === 0) full = answer;
    }
    expect(full).not.toBeNull();
    expect(full!.flood!.low.dropped).toBe(40);
    const drainsWhileStuck = full!.drains;
    const dropsBefore = server.stats().workers[flooded.shard]!.drops;
    expect(dropsBefore).toBeGreaterThan(0);

    // Over the limit: low messages are dropped, high ones evict queued low ones and get queued.
    flooded.client.ws.send(`flood:low:5,high:5:${SIZE}`);
    const { flood, drains } = await report(observer.client, rounds + 1);
    expect(flood!.low).toEqual({ written: 0, buffered: 0, dropped: 5 });
    expect(flood!.high).toEqual({ written: 0, buffered: 5, dropped: 0 });
    expect(flood!.bufferedAfter).toBeLessThanOrEqual(MIB);
    expect(drains).toBe(drainsWhileStuck);
    expect(server.stats().workers[flooded.shard]!.drops).toBeGreaterThanOrEqual(dropsBefore + 10);

    expect((await observer.client.request('echo while stuck')).data.toString()).toBe('echo while stuck');
    expect(flooded.client.closeEvent).toBeNull();

    // Reading again: the queue empties, then the app's drain handler runs and says so.
    flooded.client.socket.resume();
    const drained = (): number => flooded.client.received.filter((m) => !m.isBinary && m.data.toString() === 'drained').length;
    for (let attempt = 0; attempt < 500 && drained() <= drainsWhileStuck; attempt++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(drained()).toBe(drainsWhileStuck + 1);
    const last = flooded.client.received.at(-1)!;
    expect(last.isBinary).toBe(false);
    expect(last.data.toString()).toBe('drained');
    expect(initials(flooded.client, 'h')).toBe(5);
    expect(initials(flooded.client, 'l')).toBeLessThan(40 * rounds);
    expect((await report(observer.client, rounds + 1)).drains).toBe(drainsWhileStuck + 1);
    expect(flooded.client.closeEvent).toBeNull();
    flooded.client.skipReceived();
    expect((await flooded.client.request('echo after draining')).data.toString()).toBe('echo after draining');
  });
});

describe('a burst past the high-water mark to a client that keeps reading', () => {
  it('buffers the excess and calls drain once it is written, without the client ever pausing', async () => {
    const server = await startServer({ app: fixtureApp('flood') });
    const [{ client }] = (await openShardClients(wsUrl(server), 1)) as [ShardClient];
    // 100 × 1 KiB in one handler run: past the 64 KiB high-water mark before anything is flushed.
    client.ws.send('flood:normal:100:1024');
    await waitFor(() => client.texts.includes('drained'), 'drain after the burst was written');
    expect(client.received.filter((m) => m.data.length === 1024)).toHaveLength(100);
    client.skipReceived();
    client.ws.send('report');
    const report = JSON.parse(await client.nextText()) as { flood: { normal: Record<SendStatus, number> }; drains: number };
    // Some sends had to wait (else no drain was owed), none was dropped, and drain came once.
    expect(report.flood.normal.buffered).toBeGreaterThan(0);
    expect(report.flood.normal.dropped).toBe(0);
    expect(report.drains).toBe(1);
  });
});
