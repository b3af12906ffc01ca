import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App, Shard } from '../../src/shared/app.ts';
import type { ServerOptions } from '../../src/shared/config.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { Counter, WorkerCounters } from '../../src/shared/worker-counters.ts';
import { HttpEndpoints, health } from '../../src/worker/http-endpoints.ts';
import { silentLogger, singleRoute, testContext, testShard } from '../support/worker-fakes.ts';

/** Counts the MetricsEndpoints built (the real ones), to see prom-client is loaded on the first scrape only. */
const metricsBuilt = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/worker/metrics.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/worker/metrics.ts')>();
  class CountedMetricsEndpoint extends real.MetricsEndpoint {
    constructor(counters: WorkerCounters) {
      super(counters);
      metricsBuilt.count++;
    }
  }
  return { ...real, MetricsEndpoint: CountedMetricsEndpoint };
});

const shard: Shard = testShard({ id: 0, count: 2 });

/** One local HTTP server whose requests go to whichever HttpEndpoints the test set. */
let server: Server;
let endpoints: HttpEndpoints | null = null;
let base = '';
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => endpoints!.handle(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  server.close();
});

function use(options: ServerOptions = {}, app: App<unknown> = {}, counters = new WorkerCounters(2)): WorkerCounters {
  const config = resolveConfig(options, 2);
  endpoints = new HttpEndpoints(config, counters, singleRoute(config, app, testContext(config, shard, silentLogger(), counters.slot(0))), shard, silentLogger());
  return counters;
}

const get = (path: string, init?: RequestInit) => fetch(`${base}${path}`, init);

describe('health()', () => {
  const NOW = 1_700_000_000_000;

  it('is ok when every worker beat within 2 s, and sums the connections', () => {
    const counters = new WorkerCounters(2);
    counters.slot(0)[Counter.Heartbeat] = NOW - 100;
    counters.slot(0)[Counter.Connections] = 3;
    counters.slot(1)[Counter.Heartbeat] = NOW - 1999;
    counters.slot(1)[Counter.Connections] = 4;
    expect(health(counters, NOW)).toEqual({
      status: 'ok',
      connections: 7,
      workers: [
        { worker: 0, alive: true, heartbeatAgeMs: 100, connections: 3 },
        { worker: 1, alive: true, heartbeatAgeMs: 1999, connections: 4 },
      ],
    });
  });

  it('is degraded when a worker’s heartbeat is 2 s old or it never beat', () => {
    const counters = new WorkerCounters(3);
    counters.slot(0)[Counter.Heartbeat] = NOW;
    counters.slot(1)[Counter.Heartbeat] = NOW - 2000;
    const report = health(counters, NOW);
    expect(report.status).toBe('degraded');
    expect(report.workers.map((w) => [w.alive, w.heartbeatAgeMs])).toEqual([
      [true, 0],
      [false, 2000],
      [false, -1],
    ]);
  });
});

describe('HttpEndpoints', () => {
  it('serves every worker’s counters as JSON at statsPath, query string ignored', async () => {
    const counters = use({ statsPath: '/stats' });
    counters.slot(1)[Counter.MessagesIn] = 5;
    counters.slot(0)[Counter.Connections] = 2;
    const res = await get('/stats?pretty=1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ workers: counters.allStats() });
    expect(counters.allStats()[1]!.messagesIn).toBe(5);
  });

  it('answers health with 200 while every worker beats and 503 when one does not', async () => {
    const counters = use({ healthPath: '/health' });
    counters.slot(0)[Counter.Heartbeat] = Date.now();
    counters.slot(1)[Counter.Heartbeat] = Date.now();
    const ok = await get('/health');
    expect(ok.status).toBe(200);
    expect(ok.headers.get('cache-control')).toBe('no-store');
    expect(await ok.json()).toMatchObject({ status: 'ok' });

    counters.slot(1)[Counter.Heartbeat] = 0;
    const degraded = await get('/health');
    expect(degraded.status).toBe(503);
    expect(await degraded.json()).toMatchObject({ status: 'degraded', workers: [{ alive: true }, { alive: false, heartbeatAgeMs: -1 }] });
  });

  it('loads the metrics on the first scrape, once, and serves them with prom-client’s content type', async () => {
    const counters = use({ metricsPath: '/metrics', statsPath: '/stats' });
    await (await get('/stats')).text();
    expect(metricsBuilt.count).toBe(0);
    counters.slot(1)[Counter.Connections] = 6;
    const first = await get('/metrics');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(await first.text()).toContain('shardws_connections{worker="1"} 6');
    counters.slot(1)[Counter.Connections] = 7;
    expect(await (await get('/metrics')).text()).toContain('shardws_connections{worker="1"} 7');
    expect(metricsBuilt.count).toBe(1);
  });

  it('leaves the built-in paths to the app when they are off (the default) or the method is not GET', async () => {
    const seen: string[] = [];
    use(
      { statsPath: '/stats' },
      {
        http(req, res, s) {
          seen.push(`${req.method} ${req.url} ${s.id}`);
          res.writeHead(201, { 'content-type': 'text/plain' }).end('app');
        },
      },
    );
    const posted = await get('/stats', { method: 'POST', body: 'x' });
    expect(posted.status).toBe(201);
    expect(await posted.text()).toBe('app');
    const health = await get('/health');
    expect(health.status).toBe(201);
    await health.text();
    expect(seen).toEqual(['POST /stats 0', 'GET /health 0']);
  });

  it('answers 500 when the app’s http handler throws before responding', async () => {
    use({}, { http: () => { throw new Error('boom'); } });
    const res = await get('/anything');
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('Internal Server Error');
  });

  it('keeps the status the app already sent when its handler throws afterwards', async () => {
    use(
      {},
      {
        http(_req, res) {
          res.writeHead(202, { 'content-type': 'text/plain' });
          res.write('partial ');
          throw new Error('boom');
        },
      },
    );
    const res = await get('/');
    expect(res.status).toBe(202);
    expect(await res.text()).toMatch(/^partial /);
  });

  it('answers 426 Upgrade Required naming websocket without an app handler', async () => {
    use({ statsPath: '/stats' });
    const res = await get('/chat');
    expect(res.status).toBe(426);
    expect(res.headers.get('upgrade')).toBe('websocket');
    expect(await res.text()).toBe('Upgrade Required');
  });
});
