/** The `shardws` command, run as a user runs it (a child process on this Node). */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

/** The port a server started by the CLI logs once it listens. */
function listeningPort(child: ChildProcessByStdio<null, Readable, Readable>): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"port":(\d+).*shardws listening/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
  });
}

describe('shardws CLI', () => {
  it('prints its version and help', () => {
    const version = run('--version');
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^shardws \d+\.\d+\.\d+\n$/);
    const help = run('serve', '--help');
    expect(help.status).toBe(0);
    for (const flag of ['--port', '--host', '--workers', '--deflate', '--max-payload', '--idle-timeout', '--log-level', '--tls-cert', '--redis', '--metrics-path']) {
      expect(help.stdout).toContain(flag);
    }
    // Every option line states its default.
    for (const line of help.stdout.split('\n').filter((l) => l.trimStart().startsWith('--'))) expect(line).toMatch(/default/);
    expect(run('--help').stdout).toMatch(/^  proxy URL /m);
    const proxyHelp = run('proxy', '--help');
    expect(proxyHelp.status).toBe(0);
    for (const flag of ['--port', '--workers', '--deflate', '--tls-cert', '--unix', '--[no-]proxy-protocol', '--balance', '--passthrough', '--upstream-deflate', '--upstream-timeout']) {
      expect(proxyHelp.stdout).toContain(flag);
    }
    expect(proxyHelp.stdout).not.toContain('--redis');
    for (const line of proxyHelp.stdout.split('\n').filter((l) => l.trimStart().startsWith('--'))) expect(line).toMatch(/default/);
  });

  it.each([
    [['serve', '--port', 'abc'], /--port must be a whole number/],
    [['serve', '--bogus'], /unknown option --bogus/],
    [['serve', '--deflate=fast'], /--deflate must be shared or dedicated/],
    [['serve', '--workers', '0'], /workers must be an integer from 1/],
    [['serve', '--tls-cert', 'x.pem'], /--tls-cert and --tls-key go together/],
    [['frobnicate'], /unknown command/],
    [['proxy'], /proxy takes one argument, the upstream URL/],
    [['proxy', 'http://a.example'], /is not a ws:\/\/ or wss:\/\/ URL/],
    [['proxy', 'ws://a.example', '--balance', 'random'], /--balance must be least-connections or round-robin/],
    [['proxy', 'ws://a.example', '--redis', 'redis://x'], /unknown option --redis \(try shardws proxy --help\)/],
  ])('refuses %j with one clear line and exit code 2', (args, message) => {
    const result = run(...args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('serves the demo: /echo works and SIGTERM shuts it down gracefully', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', '--workers', '2', '--deflate'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const port = await listeningPort(child);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`, { perMessageDeflate: true });
      const echoed = await new Promise<string>((resolve, reject) => {
        ws.on('open', () => ws.send('hello cli'));
        ws.on('message', (data) => resolve(String(data)));
        ws.on('error', reject);
      });
      expect(echoed).toBe('hello cli');
      expect(ws.extensions).toContain('permessage-deflate');
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await closed).toBe(1001);
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('runs a gateway: shardws proxy relays to the upstream with deflate on the client leg', async () => {
    const { WebSocketServer } = await import('ws');
    const upstream = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((resolve) => upstream.once('listening', resolve));
    const seen: string[] = [];
    upstream.on('connection', (ws, req) => {
      seen.push(`${req.url} ${req.headers['sec-websocket-extensions'] ?? 'no extensions'}`);
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    });
    const upstreamUrl = `ws://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    const child = spawn(process.execPath, [CLI, 'proxy', upstreamUrl, '--port', '0', '--host', '127.0.0.1', '--workers', '2', '--deflate'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await listeningPort(child);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?room=2`, { perMessageDeflate: true });
      const echoed = await new Promise<string>((resolve, reject) => {
        ws.on('open', () => ws.send('through the gateway'));
        ws.on('message', (data) => resolve(String(data)));
        ws.on('error', reject);
      });
      expect(echoed).toBe('through the gateway');
      expect(ws.extensions).toContain('permessage-deflate');
      expect(seen).toEqual(['/chat?room=2 no extensions']);
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await closed).toBe(1001);
    } finally {
      child.kill('SIGKILL');
      for (const client of upstream.clients) client.terminate();
      await new Promise((resolve) => upstream.close(resolve));
    }
  });
});
