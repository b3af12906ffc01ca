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
import { formatMarkdown, formatTable } from '../bench/load/report.ts';
import { generatorBoundNote, runLoad } from '../bench/load/run-load.ts';
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

describe('shardws bench on a terminal', () => {
  it('shows live rates during the warm-up, not 0 msg/s', async () => {
    const lines: string[] = [];
    await runLoad(quick({ url: `${base}/echo`, connections: 2, warmup: 1.5, duration: 0.3 }), { progress: (line) => lines.push(line) });
    const warmUp = lines.filter((line) => line.startsWith('warm-up'));
    expect(warmUp.length).toBeGreaterThan(0);
    expect(warmUp.some((line) => /[1-9][\d,]* msg\/s/.test(line)), warmUp.join('\n')).toBe(true);
  });

  it('returns partial results when aborted while measuring', async () => {
    const abort = new AbortController();
    const lines: string[] = [];
    const run = runLoad(quick({ url: `${base}/echo`, connections: 2, warmup: 0.2, duration: 60 }), {
      signal: abort.signal,
      progress: (line) => {
        lines.push(line);
        // The first progress line while measuring: stop there.
        if (line.startsWith('measuring')) abort.abort();
      },
    });
    const result = await run;
    expect(result.interrupted).toBe(true);
    expect(result.measuredSeconds).toBeGreaterThan(0);
    expect(result.measuredSeconds).toBeLessThan(60);
    expect(result.messages).toBeGreaterThan(0);
    expect(result.notes[0]).toMatch(/^interrupted: partial results \([\d.]+ s measured of 60 s\)$/);
    expect(formatTable(result)).toContain('(interrupted: partial results)');
  });

  it('stops opening connections once every attempt fails (fail fast)', async () => {
    const closed = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => closed.once('listening', () => resolve()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const result = await runLoad(quick({ url: `ws://127.0.0.1:${port}/`, connections: 2000, concurrency: 10 }));
    expect(result.connections.opened).toBe(0);
    expect(result.connections.failed).toBeGreaterThanOrEqual(10);
    expect(result.connections.failed).toBeLessThan(2000);
    expect(result.errorSamples[0]![0]).toContain('ECONNREFUSED');
  });

  it('prints an aligned terminal table by default and markdown on request, with the same rows', async () => {
    const result = await runLoad(quick({ url: `${base}/echo`, connections: 2, duration: 0.3, warmup: 0.1 }));
    const table = formatTable(result);
    const rows = table.split('\n').filter((line) => line.startsWith('  ') && !line.startsWith('  -'));
    // Labels end in one column, values start in the next.
    const valueColumn = rows.map((line) => /^ +\S.*?\S  (?=\S)/.exec(line)![0].length);
    expect(new Set(valueColumn).size).toBe(1);
    expect(table).not.toContain('|');
    const markdown = formatMarkdown(result);
    expect(markdown).toContain('| measure | value |');
    expect(markdown.split('\n').filter((line) => line.startsWith('| ') && line !== '| measure | value |' && !line.startsWith('| ---'))).toHaveLength(rows.length);
  });
});

describe('generatorBoundNote', () => {
  it('warns at 90 % of the client threads, capped by the cores', () => {
    expect(generatorBoundNote(179, 2, 8)).toBeNull();
    expect(generatorBoundNote(180, 2, 8)).toMatch(/^the generator used 180% CPU, 90% of what its 2 thread\(s\) can: it was probably the bottleneck/);
    // Four threads on a two-core machine can use two cores at most.
    expect(generatorBoundNote(185, 4, 2)).toContain('93% of what its 4 thread(s) can');
    expect(generatorBoundNote(50, 1, 1)).toBeNull();
  });
});
