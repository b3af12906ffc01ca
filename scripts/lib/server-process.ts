/**
 * Starts scripts/lib/server-child.ts and follows what it prints: the port, periodic samples of
 * the server's RSS, descriptors and counters, and its log lines at error level or above.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ListenOptions } from '../../src/main/listen.ts';

export interface ServerSample {
  readonly type: 'sample' | 'final';
  readonly at: number;
  readonly rss: number;
  readonly fds: number | null;
  readonly restarts: number;
  readonly connections: number;
  readonly handshakes: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly drops: number;
  readonly refused: number;
  readonly pool: { readonly pagesTotal: number; readonly pagesFree: number; readonly allocations: number };
}

const CHILD = fileURLToPath(new URL('./server-child.ts', import.meta.url));

export class ServerProcess {
  readonly #child: ChildProcess;
  readonly samples: ServerSample[] = [];
  /** Log lines of level error (50) or above: crashes, restarts. */
  readonly errors: string[] = [];
  port = 0;
  #final: ServerSample | null = null;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /** Starts the server with `options` (plus `sampleMs`) and resolves once it listens. */
  static async start(options: ListenOptions & { sampleMs?: number }): Promise<ServerProcess> {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const server = new ServerProcess(child);
    await new Promise<void>((resolve, reject) => {
      let rest = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        for (const line of lines) {
          let parsed: { type?: string; level?: number; port?: number };
          try {
            parsed = JSON.parse(line) as typeof parsed;
          } catch {
            continue;
          }
          if (parsed.type === 'listening') {
            server.port = parsed.port!;
            resolve();
          } else if (parsed.type === 'sample') server.samples.push(parsed as ServerSample);
          else if (parsed.type === 'final') server.#final = parsed as ServerSample;
          else if ((parsed.level ?? 0) >= 50) server.errors.push(line);
        }
      });
      child.once('exit', (code) => reject(new Error(`the server process exited with ${code} before listening`)));
    });
    return server;
  }

  get latest(): ServerSample | null {
    return this.samples.at(-1) ?? null;
  }

  /** Resolves with the next sample (at most `sampleMs` away). */
  nextSample(): Promise<ServerSample> {
    const count = this.samples.length;
    return new Promise((resolve) => {
      const poll = setInterval(() => {
        if (this.samples.length > count) {
          clearInterval(poll);
          resolve(this.samples.at(-1)!);
        }
      }, 20);
    });
  }

  /** Closes the server gracefully (SIGTERM) and resolves with its last sample. */
  async stop(): Promise<ServerSample | null> {
    if (this.#child.exitCode !== null) return this.#final;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.kill('SIGTERM');
    const timeout = setTimeout(() => this.#child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timeout);
    return this.#final;
  }
}
