/**
 * Limits on the opening handshake: the handshake timeout (slowloris), header size and count,
 * handshakes in progress, and what the server answers and logs when each is hit. The origin
 * allow-list and maxConnections are covered in upgrade.test.ts.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardServer } from '../../src/main/listen.ts';
import { RawConnection, cleanup, fixtureApp, openClient, startServer, upgradeRequest, waitFor, withTimeout } from './helpers.ts';
import { sleep } from './resources.ts';
import { REFUSE_LINGER_MS } from '../../src/runtime/refuse.ts';

afterEach(cleanup);

const handshakes = (server: ShardServer): number => server.stats().workers.reduce((sum, w) => sum + w.handshakes, 0);

async function echoes(port: number, text: string): Promise<void> {
  const client = await openClient(`ws://127.0.0.1:${port}/echo`);
  expect((await client.request(text)).data.toString()).toBe(text);
  client.ws.close();
}

/** Writes a request that is too large and reports what came back: a status, or a bare close. */
async function oversized(port: number, request: string): Promise<{ status: number | null }> {
  const raw = await RawConnection.open(port);
  raw.socket.write(request, 'latin1');
  await waitFor(() => raw.closed || raw.ended || raw.buffered.includes('\r\n\r\n'), 'an answer to the oversized request');
  const head = raw.buffered.toString('latin1');
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(head);
  // Whatever the answer, the server closes the connection.
  await waitFor(() => raw.closed || raw.ended, 'the server to close the connection');
  return { status: status === null ? null : Number(status[1]) };
}

/** A valid upgrade request carrying `count` extra headers of `size` bytes each. */
function paddedRequest(count: number, size: number): string {
  const base = upgradeRequest('/echo');
  const pad = Array.from({ length: count }, (_, i) => `x-pad-${i}: ${'a'.repeat(Math.max(0, size - 10 - String(i).length))}\r\n`).join('');
  return base.slice(0, -2) + pad + '\r\n';
}

const KIB = 1024;
const hundredKib = (): string => paddedRequest(100, KIB);
const fiveThousand = (): string => paddedRequest(5000, 12);

describe('the handshake timeout', () => {
  it('cuts off a client that sends its request one byte a second', async () => {
    const server = await startServer({ app: fixtureApp('commands'), handshakeTimeout: 1 });
    // Before the connect: the server's clock starts when a worker takes the socket, which may be
    // before this thread hears of the connection.
    const started = Date.now();
    const raw = await RawConnection.open(server.address().port);
    const request = Buffer.from(upgradeRequest('/echo'), 'latin1');
    let sent = 0;
    raw.socket.write(request.subarray(sent, ++sent));
    const trickle = setInterval(() => {
      if (!raw.closed && sent < request.length) raw.socket.write(request.subarray(sent, ++sent));
    }, 1000);
    try {
      await waitFor(() => raw.closed || raw.ended, 'the slow client to be cut off', 5000);
    } finally {
      clearInterval(trickle);
    }
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3500);
    expect(sent).toBeLessThanOrEqual(4);
    // Cut off (with a 408 at most), never upgraded.
    expect(raw.buffered.toString('latin1')).not.toContain(' 101 ');
    await waitFor(() => handshakes(server) === 0, 'the handshake to be uncounted');
    await echoes(server.address().port, 'after a slow client');
  });

  it('300 slow clients at once do not stop a normal client from connecting and echoing', async () => {
    // A handshake timeout long enough that the slow clients surely still hold theirs while the
    // normal client connects, however loaded the machine.
    const server = await startServer({ app: fixtureApp('commands'), handshakeTimeout: 5 });
    const port = server.address().port;
    const request = Buffer.from(upgradeRequest('/echo'), 'latin1');
    const slow: RawConnection[] = [];
    for (let batch = 0; batch < 3; batch++) {
      slow.push(...(await Promise.all(Array.from({ length: 100 }, () => RawConnection.open(port)))));
    }
    let sent = 0;
    const drip = (): void => {
      for (const raw of slow) if (!raw.closed) raw.socket.write(request.subarray(sent, sent + 1));
      sent++;
    };
    drip();
    const trickle = setInterval(drip, 1000);
    try {
      // While all of them hold a handshake open, a normal client gets through, well before any
      // of theirs times out.
      const started = Date.now();
      await echoes(port, 'among slow clients');
      expect(Date.now() - started).toBeLessThan(4000);
      expect(slow.filter((raw) => raw.closed || raw.ended)).toHaveLength(0);
      await waitFor(() => slow.every((raw) => raw.closed || raw.ended), 'every slow client to be cut off', 12_000);
    } finally {
      clearInterval(trickle);
    }
    for (const raw of slow) expect(raw.buffered.toString('latin1')).not.toContain(' 101 ');
    await waitFor(() => handshakes(server) === 0, 'the handshakes to be uncounted');
    expect(server.stats().restarts).toBe(0);
    await echoes(port, 'after 300 slow clients');
  });
});

describe('header limits', () => {
  it('answers 100 KiB of headers with 431 (or a close), never a crash', async () => {
    const server = await startServer({ app: fixtureApp('commands') });
    const { status } = await oversized(server.address().port, hundredKib());
    if (status !== null) expect(status).toBe(431);
    expect(server.stats().restarts).toBe(0);
    await echoes(server.address().port, 'after 100 KiB of headers');
  });

  it('answers 5,000 headers with 431/400 (or a close), never a crash', async () => {
    const server = await startServer({ app: fixtureApp('commands') });
    const { status } = await oversized(server.address().port, fiveThousand());
    if (status !== null) expect([400, 431]).toContain(status);
    expect(server.stats().restarts).toBe(0);
    await echoes(server.address().port, 'after 5,000 headers');
  });
});

describe('the maxHandshakes option', () => {
  it('answers 503 past the handshakes in progress a worker allows, and admits again once they end', async () => {
    const server = await startServer({ app: fixtureApp('commands'), workers: 1, maxHandshakes: 3 });
    const port = server.address().port;
    const silent = await Promise.all(Array.from({ length: 3 }, () => RawConnection.open(port)));
    await waitFor(() => handshakes(server) === 3, 'three silent handshakes to be counted');
    const extra = await RawConnection.open(port);
    expect((await extra.request(upgradeRequest('/echo'))).status).toBe(503);
    for (const raw of silent) raw.socket.destroy();
    await waitFor(() => handshakes(server) === 0, 'the silent handshakes to end');
    await echoes(port, 'after the cap');
    expect(server.stats().restarts).toBe(0);
  });
});

/** Sends `request` and resets the connection as the first bytes of the answer arrive; returns them. */
async function resetOnAnswer(raw: RawConnection, request: string): Promise<string> {
  const answer = new Promise<string>((resolve) => {
    raw.socket.once('data', (chunk: Buffer) => {
      raw.socket.resetAndDestroy();
      resolve(chunk.toString('latin1'));
    });
  });
  raw.socket.write(request, 'latin1');
  return withTimeout(answer, 'an answer to reset on');
}

describe('refused clients', () => {
  // A refused socket has no other listener in the worker: an unheard 'error' from a reset would
  // take the worker, and every connection on it, down.
  it('a client that resets after its bad upgrade was refused (426) harms no other connection', async () => {
    const server = await startServer({ app: fixtureApp('commands'), workers: 1 });
    const port = server.address().port;
    const other = await openClient(`ws://127.0.0.1:${port}/echo`);
    for (let i = 0; i < 20; i++) {
      const raw = await RawConnection.open(port);
      expect(await resetOnAnswer(raw, upgradeRequest('/echo', { 'Sec-WebSocket-Version': '8' }))).toMatch(/^HTTP\/1\.1 426 /);
    }
    await sleep(200);
    expect((await other.request('still here')).data.toString()).toBe('still here');
    expect(server.stats().restarts).toBe(0);
  });

  it('a client that resets after a 503 at maxHandshakes harms no other connection', async () => {
    const server = await startServer({ app: fixtureApp('commands'), workers: 1, maxHandshakes: 1 });
    const port = server.address().port;
    const other = await openClient(`ws://127.0.0.1:${port}/echo`);
    const holder = await RawConnection.open(port);
    await waitFor(() => handshakes(server) === 1, 'the silent handshake to be counted');
    for (let i = 0; i < 20; i++) {
      const raw = await RawConnection.open(port);
      expect(await resetOnAnswer(raw, upgradeRequest('/echo'))).toMatch(/^HTTP\/1\.1 503 /);
    }
    await sleep(200);
    expect(holder.closed).toBe(false);
    expect((await other.request('still here')).data.toString()).toBe('still here');
    expect(server.stats().restarts).toBe(0);
    holder.socket.destroy();
  });

  it('a client that resets while an async upgrade handler decides harms no other connection', async () => {
    const server = await startServer({ app: fixtureApp('upgrade-gate'), workers: 1 });
    const port = server.address().port;
    const other = await openClient(`ws://127.0.0.1:${port}/echo?token=secret`);
    await other.next(); // the gate's greeting
    for (let i = 0; i < 20; i++) {
      const raw = await RawConnection.open(port);
      raw.socket.write(upgradeRequest('/async?token=secret'), 'latin1');
      // The handler waits 20 ms; the reset lands while it does.
      await sleep(5);
      raw.socket.resetAndDestroy();
    }
    await waitFor(() => handshakes(server) === 0, 'the reset handshakes to end');
    expect((await other.request('still here')).data.toString()).toBe('still here');
    expect(server.stats().restarts).toBe(0);
  });

  it('closes a refused socket whose peer never closes its side, after the linger', async () => {
    const server = await startServer({ app: fixtureApp('commands'), workers: 1, maxHandshakes: 1 });
    const port = server.address().port;
    const holder = await RawConnection.open(port);
    await waitFor(() => handshakes(server) === 1, 'the silent handshake to be counted');
    // allowHalfOpen: this client reads the 503 and the server's FIN but never ends its own side.
    const raw = await RawConnection.open(port, { allowHalfOpen: true });
    expect((await raw.request(upgradeRequest('/echo'))).status).toBe(503);
    // Until the linger ends the server reads and drops what comes: the socket stays.
    raw.socket.write('more\r\n');
    await sleep(500);
    expect(raw.closed).toBe(false);
    // After it, the server's socket is gone: the next bytes meet a reset, which the write after
    // them reports (our side has read its EOF already, so only a write can notice).
    await sleep(REFUSE_LINGER_MS);
    raw.socket.write('more\r\n');
    await sleep(200);
    raw.socket.write('more\r\n');
    await waitFor(() => raw.closed, 'a reset from the dropped socket', 3000);
    holder.socket.destroy();
  }, REFUSE_LINGER_MS + 10_000);
});

// ---- the same limits, read from the log of a server in a child process ----------------------

const CHILD = fileURLToPath(new URL('../fixtures/listen-child.ts', import.meta.url));

interface LogLine {
  readonly msg: string;
  readonly [key: string]: unknown;
}

class LoggedServer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: LogLine[] = [];
  port = 0;
  #rest = '';

  constructor(options: object) {
    this.child = spawn(process.execPath, [CHILD, JSON.stringify(options)], { stdio: 'pipe' });
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const text = this.#rest + chunk;
      const lines = text.split('\n');
      this.#rest = lines.pop()!;
      for (const line of lines) {
        try {
          const parsed = JSON.parse(line) as LogLine;
          this.lines.push(parsed);
          if (parsed.msg.startsWith('listening on')) this.port = Number(parsed.port);
        } catch {
          // not a log line
        }
      }
    });
    this.child.stderr.resume();
  }

  async listening(): Promise<number> {
    await waitFor(() => this.port > 0 || this.child.exitCode !== null, 'the child server to listen', 15_000);
    if (this.port === 0) throw new Error(`the child server exited with ${this.child.exitCode}`);
    return this.port;
  }

  /** Waits for a log line that `match` accepts and returns it. */
  async logged(what: string, match: (line: LogLine) => boolean, timeout = 5000): Promise<LogLine> {
    await waitFor(() => this.lines.some(match), `a log line: ${what}`, timeout);
    return this.lines.find(match)!;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await withTimeout(exited, 'the child server to exit', 10_000).catch(() => this.child.kill('SIGKILL'));
  }
}

describe('what the server logs when a handshake limit is hit', () => {
  let logged: LoggedServer | null = null;
  afterEach(async () => {
    await logged?.stop();
    logged = null;
  });

  it('logs header overflows with their status, handshake timeouts and maxHandshakes refusals', async () => {
    logged = new LoggedServer({ workers: 1, handshakeTimeout: 1, maxHandshakes: 2 });
    const port = await logged.listening();

    await oversized(port, hundredKib());
    const overflow = await logged.logged('a 431', (l) => l.msg.startsWith('bad HTTP request') && l.status === 431);
    expect(overflow.code).toBe('HPE_HEADER_OVERFLOW');
    const before = logged.lines.length;
    await oversized(port, fiveThousand());
    await logged.logged('a second 431', (l) => logged!.lines.indexOf(l) >= before && l.msg.startsWith('bad HTTP request') && (l.status === 431 || l.status === 400));

    // Two silent sockets fill maxHandshakes: the third is refused, then both time out.
    const silent = await Promise.all([RawConnection.open(port), RawConnection.open(port)]);
    await sleep(100);
    const extra = await RawConnection.open(port);
    expect((await extra.request(upgradeRequest('/echo'))).status).toBe(503);
    await logged.logged('the 503', (l) => l.msg.includes('too many handshakes in progress'));
    await waitFor(() => silent.every((raw) => raw.closed || raw.ended), 'the silent sockets to time out', 4000);
    await logged.logged('the timeout', (l) => l.msg.includes('handshake timed out') || (l.msg.startsWith('bad HTTP request') && l.status === 408));

    await echoes(port, 'the logged server still serves');
    for (const line of logged.lines) expect(line.level).toBeLessThan(50); // nothing at error or above
  });
});
