/**
 * The admin listener: metrics, stats and health on a port of their own, served by the primary,
 * bound to localhost unless told otherwise, so that operators' endpoints are off the port the
 * clients use. The primary answers from the counters every worker keeps in shared memory, and
 * keeps answering while a worker is stuck (which is when /health matters).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { WorkerCounters } from '../shared/worker-counters.ts';
import { OpsAnswers } from '../worker/http-endpoints.ts';

/** The admin listener's paths; anything else gets 404 with this list. */
export const ADMIN_PATHS = ['/metrics', '/stats', '/health'] as const;

export class AdminListener {
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Listens on host:port; rejects (the error's `flag` naming --admin-port) when it cannot. */
  static async start(port: number, host: string, counters: WorkerCounters, logger: Logger): Promise<AdminListener> {
    const answers = new OpsAnswers(counters, logger);
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '').split('?', 1)[0]!;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method Not Allowed\n');
        return;
      }
      if (path === '/metrics') answers.metrics(res);
      else if (path === '/stats') answers.stats(res);
      else if (path === '/health') answers.health(res);
      else res.writeHead(404, { 'content-type': 'text/plain' }).end(`Not Found: the admin listener serves ${ADMIN_PATHS.join(', ')}\n`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException & { flag?: string }) => {
        error.flag = '--admin-port';
        reject(error);
      });
      server.listen({ port, host }, () => resolve());
    });
    server.on('error', (error) => logger.error({ err: error }, 'admin listener error'));
    return new AdminListener(server);
  }

  address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
