import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { cleanup, fixtureApp, openClient, startServer, wsUrl } from './helpers.ts';

afterEach(cleanup);

const MiB = 1024 * 1024;

interface Limits {
  readonly maxYoungGenerationSizeMb: number;
}

async function workerLimits(options: { workerYoungGenerationSize?: number }): Promise<Limits> {
  const server = await startServer({ app: fixtureApp('commands'), workers: 1, ...options });
  const client = await openClient(wsUrl(server, '/echo'));
  const reply = await client.request('limits');
  client.ws.close();
  return JSON.parse(reply.data.toString()) as Limits;
}

/** What V8 gives a worker thread started with no resourceLimits, on this machine. */
async function defaultYoungGenerationMb(): Promise<number> {
  const probe = new Worker('require("node:worker_threads").parentPort.postMessage(require("node:worker_threads").resourceLimits)', { eval: true });
  const [limits] = (await once(probe, 'message')) as [Limits];
  await probe.terminate();
  return limits.maxYoungGenerationSizeMb;
}

describe('worker heap limits', () => {
  it("sets each worker's young generation limit to 16 MiB by default", async () => {
    expect((await workerLimits({})).maxYoungGenerationSizeMb).toBe(16);
  });

  it('takes workerYoungGenerationSize as given', async () => {
    expect((await workerLimits({ workerYoungGenerationSize: 32 * MiB })).maxYoungGenerationSizeMb).toBe(32);
  });

  it('leaves V8 its own sizing with 0', async () => {
    // V8 sizes it from the machine's memory (96 MiB on a 24 GiB machine): compared to a plain
    // worker's on this machine, not to a constant.
    const own = await defaultYoungGenerationMb();
    expect((await workerLimits({ workerYoungGenerationSize: 0 })).maxYoungGenerationSizeMb).toBe(own);
  });

  it('refuses a negative or fractional cap before starting anything', async () => {
    await expect(startServer({ workerYoungGenerationSize: -1 })).rejects.toThrow(/workerYoungGenerationSize/);
    await expect(startServer({ workerYoungGenerationSize: 1.5 })).rejects.toThrow(/workerYoungGenerationSize/);
  });
});
