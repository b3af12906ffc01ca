/**
 * The load generator end to end: short runs (about a second each) against a real two-worker
 * shardws server in every mode, and against a `ws` echo that corrupts one byte, which must
 * show up as errors rather than as data points.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { resolveBenchOptions } from '../bench/load/options.ts';
import type { BenchOptions } from '../bench/load/options.ts';
import { runLoad } from '../bench/load/run-load.ts';
import { listen } from '../src/main/listen.ts';
import type { ShardServer } from '../src/main/listen.ts';

let server: ShardServer;
let base: string;

beforeAll(async () => {
  server = await listen({ port: 0, host: '127.0.0.1', workers: 2, logLevel: 'silent', shutdownGrace: 1 });
  base = `ws://127.0.0.1:${server.address().port}`;
});

afterAll(async () => {
  await server?.close();
});

const quick = (options: Partial<BenchOptions> & { url: string }): BenchOptions =>
  resolveBenchOptions({ duration: 1, warmup: 0.3, threads: 2, ...options });

describe('shardws bench against shardws', () => {
  it('echo: counts verified round trips and reports no errors', async () => {
    const result = await runLoad(quick({ url: `${base}/echo`, connections: 4, inFlight: 4 }));
    expect(result.errors).toBe(0);
    expect(result.errorSamples).toEqual([]);
    expect(result.connections.opened).toBe(4);
    expect(result.messages).toBeGreaterThan(100);
    expect(result.messagesPerSecond).toBeGreaterThan(0);
    expect(result.latency.count).toBe(result.messages);
    expect(result.latency.p50).toBeGreaterThan(0);
    expect(result.latency.p99).toBeGreaterThanOrEqual(result.latency.p50);
    expect(result.generatorCpuPercent).toBeGreaterThan(0);
  });

  it('echo with pre-masked frames (--fast-mask), binary 16 KiB', async () => {
    const result = await runLoad(quick({ url: `${base}/echo`, connections: 2, inFlight: 2, size: 16 * 1024, kind: 'binary', fastMask: true }));
    expect(result.errors).toBe(0);
    expect(result.messages).toBeGreaterThan(10);
    expect(result.megabytesPerSecond).toBeGreaterThan(0);
  });

  it('broadcast: deliveries to every subscriber, none lost', async () => {
    const result = await runLoad(quick({ url: `${base}/broadcast`, mode: 'broadcast', connections: 6, inFlight: 2, size: 256 }));
    expect(result.errors).toBe(0);
    expect(result.lost).toBe(0);
    expect(result.connections.opened).toBe(7); // 6 subscribers and the publisher
    expect(result.publishesPerSecond).toBeGreaterThan(0);
    expect(result.messages).toBeGreaterThan(6 * 10);
    expect(result.latency.count).toBe(result.messages);
  });

  it('connect: opens and holds every connection, reads RSS of the given pid', async () => {
    const result = await runLoad(quick({ url: `${base}/echo`, mode: 'connect', connections: 60, duration: 0.5, serverPids: [process.pid] }));
    expect(result.errors).toBe(0);
    expect(result.connections.opened).toBe(60);
    expect(result.connections.held).toBe(60);
    expect(result.handshakesPerSecond).toBeGreaterThan(0);
    expect(result.handshakeLatency.count).toBe(60);
    expect(result.serverRssBeforeKiB).toBeGreaterThan(0);
    expect(result.serverRssPerConnectionKiB).not.toBeNull();
  });
});

describe('shardws bench against a wrong echo', () => {
  let wrong: WebSocketServer;
  let url: string;

  beforeAll(async () => {
    wrong = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => wrong.once('listening', () => resolve()));
    url = `ws://127.0.0.1:${(wrong.address() as AddressInfo).port}/`;
    wrong.on('connection', (ws) => {
      ws.on('message', (data: Buffer, isBinary) => {
        const copy = Buffer.from(data);
        const at = copy.length - 3; // in the filler: the framing stays valid, the content does not
        copy[at] = copy[at] === 0x61 ? 0x62 : 0x61;
        ws.send(copy, { binary: isBinary });
      });
    });
  });

  afterAll(async () => {
    for (const client of wrong.clients) client.terminate();
    await new Promise<void>((resolve) => wrong.close(() => resolve()));
  });

  it('counts every corrupted echo as an error, never as a data point', async () => {
    const result = await runLoad(quick({ url, connections: 2, inFlight: 2 }));
    expect(result.errors).toBeGreaterThan(0);
    expect(result.messages).toBe(0);
    expect(result.latency.count).toBe(0);
    expect(result.errorSamples.map(([text]) => text)).toContain('echo: content differs from what was sent');
  });
});
