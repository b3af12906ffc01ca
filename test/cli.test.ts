/** The `shardws` command, run as a user runs it (a child process on this Node). */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

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
  });

  it.each([
    [['serve', '--port', 'abc'], /--port must be a whole number/],
    [['serve', '--bogus'], /unknown option --bogus/],
    [['serve', '--deflate=fast'], /--deflate takes a preset/],
    [['serve', '--workers', '0'], /workers must be an integer from 1/],
    [['serve', '--tls-cert', 'x.pem'], /--tls-cert and --tls-key go together/],
    [['frobnicate'], /unknown command/],
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
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const match = /"port":(\d+).*shardws listening/.exec(out);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
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
});
