/**
 * Throwaway redis-servers on free loopback ports, for tests of the Redis bridge: a single one,
 * and a three-node Redis Cluster made with `redis-cli --cluster create`. CI installs Debian's
 * redis-server and redis-tools (.ci/run); elsewhere the tests that need them say so and are
 * skipped.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const hasRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
export const hasRedisCli = spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  const free = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (free) await new Promise((resolve) => server.close(resolve));
  return free;
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

/** Ports a redis-server is tried on before its start fails. */
const START_ATTEMPTS = 5;

export class RedisServer {
  readonly port: number;
  readonly #args: readonly string[];
  #child: ChildProcess | null = null;

  constructor(port: number, args: readonly string[] = []) {
    this.port = port;
    this.#args = args;
  }

  /**
   * Starts a redis-server on a port `pick` finds free, or on another when that one was taken
   * before redis-server bound it: the picker's probe lets the port go first, and any connect on
   * the machine may get it as its ephemeral port in the gap.
   */
  static async launch(pick: () => Promise<number> = freePort, args: (port: number) => readonly string[] = () => []): Promise<RedisServer> {
    for (let attempt = 1; ; attempt++) {
      const port = await pick();
      const server = new RedisServer(port, args(port));
      try {
        await server.start();
        return server;
      } catch (error) {
        if (attempt === START_ATTEMPTS || !/Address already in use/.test((error as Error).message)) throw error;
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...this.#args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      const read = (chunk: Buffer): void => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', read);
      child.stderr!.on('data', read);
      // 'close', not 'exit': its last words (why it stopped) are read by then.
      child.once('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${out}`));
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** Three masters, no replicas, every slot assigned: `redis-cli --cluster create`. */
export class RedisCluster {
  readonly nodes: RedisServer[];
  readonly #dir: string;

  private constructor(nodes: RedisServer[], dir: string) {
    this.nodes = nodes;
    this.#dir = dir;
  }

  /** Any node's URL: a client finds the others from it. */
  get url(): string {
    return this.nodes[0]!.url;
  }

  static async start(size = 3): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'shardws-cluster-'));
    const nodes: RedisServer[] = [];
    const cluster = new RedisCluster(nodes, dir);
    try {
      // One after another: a node holds its ports before the next one looks for free ones.
      for (let i = 0; i < size; i++) {
        nodes.push(await RedisServer.launch(freeClusterPort, (port) => ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir]));
      }
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
      // Every node must agree before clients ask them for the slot map.
      const deadline = Date.now() + 20_000;
      for (const node of nodes) {
        while (!/cluster_state:ok/.test(spawnSync('redis-cli', ['-p', String(node.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout)) {
          if (Date.now() > deadline) throw new Error(`cluster node ${node.port} never reached cluster_state:ok`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * A redis-server for the suite this is called in: started before its first test, stopped after
 * its last, with a plain client (`probe`) to look at what the code under test did.
 */
export function suiteRedis(): { readonly server: RedisServer; readonly probe: Redis } {
  const suite = {} as { server: RedisServer; probe: Redis };
  beforeAll(async () => {
    suite.server = await RedisServer.launch();
    suite.probe = new Redis(suite.server.url, { retryStrategy: () => 50 });
    // Tests stop the server: the probe reconnects, and its refused attempts are no news.
    suite.probe.on('error', () => {});
  });
  afterAll(async () => {
    suite.probe?.disconnect();
    await suite.server?.stop();
  });
  return suite;
}
