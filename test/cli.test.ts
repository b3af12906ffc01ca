/** The `shardws` command, run as a user runs it (a child process on this Node). */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

/** Broken apps live outside the project, where the type check does not see them. */
const apps = mkdtempSync(join(tmpdir(), 'shardws-cli-'));
afterAll(() => rmSync(apps, { recursive: true, force: true }));
function app(name: string, source: string): string {
  const path = join(apps, name);
  writeFileSync(path, source);
  return path;
}

type Child = ChildProcessByStdio<null, Readable, Readable>;

/** Collects a child's output and resolves when `pattern` shows up in it (rejects if it exits first). */
function waitFor(child: Child, stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    child[stream].on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = pattern.exec(out);
      if (match) resolve(match);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before ${pattern}: ${out}`)));
  });
}

function collect(child: Child): { stdout: string; stderr: string } {
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  return output;
}

/** The port a server started by the CLI logs once it listens. */
function listeningPort(child: ChildProcessByStdio<null, Readable, Readable>): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"port":(\d+).*listening on/.exec(out);
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
    [['serve', '--deflate=fast'], /--deflate must be one of shared, dedicated, dedicated-compressor, dedicated-compressor-small/],
    [['serve', '--workers', '0'], /workers must be an integer from 1/],
    [['serve', '--tls-cert', 'x.pem'], /--tls-cert and --tls-key go together/],
    [['serve', '--app-options', '{a'], /--app-options must be JSON/],
    [['serve', '--deflate-level', '3'], /--deflate-level needs --deflate/],
    [['serve', '--admin-port', '70000'], /--admin-port must be a port from 0 to 65535/],
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

  it('documents its exit codes in both helps', () => {
    for (const args of [['--help'], ['serve', '--help']]) {
      const help = run(...args).stdout;
      expect(help).toMatch(/Exit codes: 0 [^]*1 failed at run time[^]*2 bad command line/);
    }
  });

  it.each([
    [['serve', '--port', '-5'], '--port must be a whole number, got "-5"'],
    [['serve', '--idle-timeout', '-1'], '--idle-timeout must be a number >= 0, got "-1"'],
    [['serve', '--log-format', 'xml'], '--log-format must be one of auto, json, pretty, got xml'],
  ])('reads a negative or bad value as its own flag: %j', (args, message) => {
    const result = run(...args);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(`shardws: ${message}\n`);
  });

  it('checks the app path before starting any worker: one line, exit code 2', () => {
    const result = run('serve', join(apps, 'missing.ts'), '--port', '0', '--workers', '2');
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(`shardws: app not found: ${join(apps, 'missing.ts')}\n`);
    expect(result.stdout).toBe('');
  });

  it.each([
    ['a syntax error', 'syntax.ts', 'export default {\n  message(ws, d) {\n    ws.send(d\n  }\n};\n', ':4: SyntaxError: '],
    ['a throw at the top level', 'throws.ts', 'const a = 1;\nthrow new Error(`broken ${a}`);\nexport default {};\n', ':2: Error: broken 1'],
    ['an enum (not type-strippable)', 'enum.ts', 'enum Mode { A }\nexport default { mode: Mode.A };\n', ':1: SyntaxError: TypeScript enum is not supported'],
  ])('reports %s in the app as one line with its file:line, exit code 1, no stack', (_what, file, source, expected) => {
    const path = app(file, source);
    const result = run('serve', path, '--port', '0', '--workers', '2', '--log-format', 'json');
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`shardws: ${path}${expected}`);
    // Nothing on stdout repeats it (no log record with a stack per worker).
    expect(result.stdout).not.toContain('stack');
    expect(result.stdout).not.toContain('"level":50');
  });

  it('hints that the enum needs a build', () => {
    const result = run('serve', app('enum2.ts', 'enum E { A }\nexport default {};\n'), '--port', '0', '--workers', '1');
    expect(result.stderr).toContain('compile with tsc');
  });

  it('says in one line that the port is taken, with --port, exit code 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--host', '127.0.0.1', '--workers', '2', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
        const output = collect(child);
        child.once('exit', (status) => resolve({ status, ...output }));
      });
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(`shardws: port ${port} on 127.0.0.1 is already in use (another server?); pick another with --port\n`);
      expect(result.stdout).not.toContain('"level":50');
      expect(result.stdout).not.toContain('stack');
    } finally {
      taken.close();
    }
  });

  it('names the admin listener in the ready line, and --admin-port when its port is taken', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', '--workers', '1', '--admin-port', '0', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const [, admin] = await waitFor(child, 'stderr', /; metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics\n/);
      const metrics = await fetch(`http://127.0.0.1:${admin}/metrics`);
      expect(metrics.status).toBe(200);
      const taken = run('serve', '--port', '0', '--workers', '1', '--admin-port', admin!, '--log-format', 'json');
      expect(taken.status).toBe(1);
      expect(taken.stderr).toBe(`shardws: port ${admin} on 127.0.0.1 is already in use (another server?); pick another with --admin-port\n`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('prints one human line when ready: on stderr beside JSON logs, as the pretty log line otherwise', async () => {
    for (const format of ['json', 'pretty'] as const) {
      const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', '--workers', '2', '--log-format', format], { stdio: ['ignore', 'pipe', 'pipe'] });
      const output = collect(child);
      try {
        const ready = await waitFor(child, format === 'json' ? 'stderr' : 'stdout', /listening on http:\/\/127\.0\.0\.1:(\d+) — 2 workers; demo at \/, echo at \/echo(\n|  )/);
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
        const human = `${output.stdout}${output.stderr}`.split('\n').filter((line) => !line.startsWith('{'));
        expect(human.filter((line) => line.includes('listening on http:')), format).toHaveLength(1);
        if (format === 'json') {
          expect(output.stderr).toBe(`shardws: ${ready[0]}`);
          for (const line of output.stdout.trim().split('\n')) expect(() => JSON.parse(line), line).not.toThrow();
        } else {
          expect(output.stderr).toBe('');
          expect(output.stdout).not.toContain('{"level"');
          expect(output.stdout).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  primary listening on http:/m);
        }
      } finally {
        child.kill('SIGKILL');
      }
    }
  });

  it('npm start hands SIGTERM on to the server (no shell left between npm and node)', async () => {
    const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
    if (npm.status !== 0) return expect.soft(npm.status, 'npm is not on PATH').toBe(0);
    const child = spawn('npm', ['start', '--silent', '--', '--port', '0', '--host', '127.0.0.1', '--workers', '1', '--log-format', 'json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const [, pid] = await waitFor(child, 'stdout', /"pid":(\d+)[^\n]*listening on/);
      const server = Number(pid);
      expect(server).not.toBe(child.pid);
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM'); // what a supervisor sends: to npm's pid only
      // npm's own status varies (0 after forwarding, or the signal itself, with timing); the server's fate does not.
      await exited;
      // The server got the signal and stopped, rather than running on without a parent.
      const alive = (): boolean => {
        try {
          process.kill(server, 0);
          return true;
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 100 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(alive()).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
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

describe('shardws serve --watch and SIGUSR2', () => {
  it('reloads the app in every worker on a file change and on SIGUSR2, keeping the connection open', async () => {
    const dir = mkdtempSync(join(apps, 'watch-'));
    const version = (v: string): void => writeFileSync(join(dir, 'version.ts'), `export const VERSION = '${v}';\n`);
    version('v1');
    const appFile = join(dir, 'app.ts');
    writeFileSync(appFile, "import { VERSION } from './version.ts';\nexport default { message(ws) { ws.send(VERSION); } };\n");
    const child = spawn(process.execPath, [CLI, 'serve', appFile, '--watch', '--port', '0', '--host', '127.0.0.1', '--workers', '2', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = collect(child);
    try {
      const port = await listeningPort(child);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
      const replies: string[] = [];
      ws.on('message', (data: Buffer) => replies.push(data.toString()));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const answer = async (): Promise<string> => {
        const from = replies.length;
        ws.send('?');
        for (let i = 0; i < 500 && replies.length === from; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        return replies[from]!;
      };
      const count = (pattern: RegExp): number => (output.stdout.match(pattern) ?? []).length;
      const until = async (predicate: () => boolean, what: string): Promise<void> => {
        for (let i = 0; i < 1000 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
        if (!predicate()) throw new Error(`timed out waiting for ${what}: ${output.stdout}`);
      };
      expect(await answer()).toBe('v1');
      expect(output.stdout).toContain(`watching ${dir}`);
      version('v2');
      await until(() => count(/app reloaded in every worker/g) >= 1, 'the reload on the change');
      expect(await answer()).toBe('v2');
      // SIGUSR2 reloads too, from the files as they are now (the watcher reloads for v3 as well).
      version('v3');
      await until(() => count(/app reloaded in every worker/g) >= 2, "the watcher's reload");
      await new Promise((resolve) => setTimeout(resolve, 300));
      const before = count(/app reloaded in every worker/g);
      child.kill('SIGUSR2');
      await until(() => output.stdout.includes('SIGUSR2: reloading the app') && count(/app reloaded in every worker/g) > before, 'the reload on SIGUSR2');
      expect(await answer()).toBe('v3');
      expect(ws.readyState).toBe(WebSocket.OPEN);
      ws.terminate();
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('shardws bench CLI', () => {
  it('fails fast with one line when no connection opens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const result = run('bench', `ws://127.0.0.1:${port}/`, '-c', '1000', '--concurrency', '10', '-t', '1', '-d', '1', '-w', '0');
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`^shardws bench: no connection to ws://127\\.0\\.0\\.1:${port}/ could be opened \\(stopped after \\d+ failed attempts\\): connect failed: connect ECONNREFUSED[^\\n]*\\n$`));
  });

  it('prints the partial results on Ctrl-C (SIGINT) and exits with 130', async () => {
    const server = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', '--workers', '1', '--admin-port', '0', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const [, port, admin] = await waitFor(server, 'stdout', /"port":(\d+).*"admin":"http:\/\/127\.0\.0\.1:(\d+)"/);
      const bench = spawn(process.execPath, [CLI, 'bench', `ws://127.0.0.1:${port}/echo`, '-c', '2', '-t', '1', '-w', '0.5', '-d', '60', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const output = collect(bench);
      const exited = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
      // The bench sets its SIGINT handler before it opens a connection: once the server holds
      // both, Ctrl-C is the bench's to handle (before that it would end the process, as it should).
      const open = async (): Promise<number> => {
        const { workers } = (await (await fetch(`http://127.0.0.1:${admin}/stats`)).json()) as { workers: { connections: number }[] };
        return workers.reduce((sum, w) => sum + w.connections, 0);
      };
      const deadline = Date.now() + 30_000;
      while ((await open()) < 2) {
        if (Date.now() > deadline) throw new Error(`the bench did not connect: ${output.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      bench.kill('SIGINT');
      expect(await exited).toBe(130);
      const result = JSON.parse(output.stdout) as { interrupted: boolean; measuredSeconds: number; messages: number; notes: string[] };
      expect(result.interrupted).toBe(true);
      expect(result.measuredSeconds).toBeLessThan(60);
      // Under a loaded machine the connect may not have finished by then: then nothing was measured, and it says so.
      if (result.measuredSeconds > 0) expect(result.messages).toBeGreaterThan(0);
      else expect(result.notes[0]).toBe('interrupted before the measurement began: nothing measured');
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('reads a negative value as its own flag', () => {
    const result = run('bench', 'ws://127.0.0.1:1/', '--connections', '-3');
    expect(result.status).toBe(2);
    expect(result.stderr).toBe('shardws bench: --connections must be a whole number, got "-3"\n');
  });
});

describe('npm run bench:micro', () => {
  it('refuses an unknown flag with one line and exit code 2', () => {
    const result = spawnSync(process.execPath, [fileURLToPath(new URL('../bench/micro/run.ts', import.meta.url)), '--bogus'], { encoding: 'utf8', timeout: 20_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^bench:micro: unknown argument --bogus \(usage: [^\n]*\)\n$/);
  });
});
