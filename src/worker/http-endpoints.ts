/**
 * What a worker answers to plain HTTP requests (not upgrades): the stats, Prometheus and health
 * endpoints when configured, then the `http` handler of the app the path routes to, else 426
 * Upgrade Required (404 for a path no route takes).
 * Whichever worker answers reports every worker: all read the counters in shared memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Shard } from '../shared/app.ts';
import type { ServerConfig } from '../shared/config.ts';
import { Counter } from '../shared/worker-counters.ts';
import type { WorkerCounters } from '../shared/worker-counters.ts';
import type { MetricsEndpoint } from './metrics.ts';
import type { RouteTable } from './route-table.ts';

/** A worker whose heartbeat is older than this is reported as not alive (they beat every 250 ms). */
const ALIVE_WITHIN_MS = 2000;

export interface Health {
  readonly status: 'ok' | 'degraded';
  readonly connections: number;
  readonly workers: readonly { readonly worker: number; readonly alive: boolean; readonly heartbeatAgeMs: number; readonly connections: number }[];
}

/** Every worker is healthy when its heartbeat is recent. */
export function health(counters: WorkerCounters, now = Date.now()): Health {
  const workers = [];
  let connections = 0;
  for (let worker = 0; worker < counters.workers; worker++) {
    const beat = counters.get(worker, Counter.Heartbeat);
    const age = beat === 0 ? -1 : now - beat;
    const open = counters.get(worker, Counter.Connections);
    connections += open;
    workers.push({ worker, alive: age >= 0 && age < ALIVE_WITHIN_MS, heartbeatAgeMs: age, connections: open });
  }
  return { status: workers.every((w) => w.alive) ? 'ok' : 'degraded', connections, workers };
}

const NO_STORE = { 'cache-control': 'no-store' } as const;

/**
 * The stats, Prometheus and health answers, one implementation for the public port (a worker's
 * HttpEndpoints) and the admin listener (the primary): both read the same shared counters.
 */
export class OpsAnswers {
  readonly #counters: WorkerCounters;

  readonly #logger: Logger;
  /** prom-client is loaded on the first scrape: a server without metrics never pays for it. */
  #metrics: Promise<MetricsEndpoint> | null = null;

  constructor(counters: WorkerCounters, logger: Logger) {
    this.#counters = counters;
    this.#logger = logger;
  }

  stats(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', ...NO_STORE }).end(JSON.stringify({ workers: this.#counters.allStats() }));
  }

  health(res: ServerResponse): void {
    const report = health(this.#counters);
    res.writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', ...NO_STORE }).end(JSON.stringify(report));
  }

  metrics(res: ServerResponse): void {
    this.#metrics ??= import('./metrics.ts').then(({ MetricsEndpoint }) => new MetricsEndpoint(this.#counters));
    this.#metrics
      .then(async (metrics) => {
        const text = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType, ...NO_STORE }).end(text);
      })
      .catch((error: unknown) => {
        this.#logger.error({ err: error }, 'metrics collection failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
  }
}

export class HttpEndpoints {
  readonly #config: ServerConfig;
  readonly #answers: OpsAnswers;
  readonly #routes: RouteTable;
  readonly #shard: Shard;
  readonly #logger: Logger;

  constructor(config: ServerConfig, counters: WorkerCounters, routes: RouteTable, shard: Shard, logger: Logger) {
    this.#config = config;
    this.#answers = new OpsAnswers(counters, logger);
    this.#routes = routes;
    this.#shard = shard;
    this.#logger = logger;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const config = this.#config;
    const path = req.url === undefined ? '' : req.url.split('?', 1)[0]!;
    if (path !== '' && req.method === 'GET') {
      if (path === config.statsPath) {
        this.#answers.stats(res);
        return;
      }
      if (path === config.metricsPath) {
        this.#answers.metrics(res);
        return;
      }
      if (path === config.healthPath) {
        this.#answers.health(res);
        return;
      }
    }
    const route = this.#routes.match(req.url ?? '/');
    if (route === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      return;
    }
    const http = route.app.http;
    if (http) {
      try {
        http(req, res, this.#shard);
      } catch (error) {
        this.#logger.error({ err: error, url: req.url }, 'app http handler threw');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('Internal Server Error');
      }
      return;
    }
    // RFC 9110 §15.5.22: 426 names the protocol to upgrade to. HTTP/2 has no Upgrade field
    // (RFC 9113 §8.2.2): there a WebSocket is opened with an extended CONNECT (RFC 8441).
    if (req.httpVersionMajor >= 2) {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('Upgrade Required: open a WebSocket with an extended CONNECT (RFC 8441)');
      return;
    }
    res.writeHead(426, { upgrade: 'websocket', connection: 'Upgrade', 'content-type': 'text/plain' }).end('Upgrade Required');
  }
}
