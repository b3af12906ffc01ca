/**
 * UnixRelay with real sockets: a Unix domain socket joined to a loopback TCP listener whose
 * "worker" (the adopt callback) echoes; strangers on the loopback listener closed; FINs passed
 * on both ways; stale socket files removed and nothing else; close() ending relayed connections.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UnixRelay } from '../../src/main/unix-relay.ts';
import { silentLogger, until } from '../support/worker-fakes.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
});

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'shardws-unix-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ws.sock');
}

/** A relay on a fresh path, its loopback listener, and the sockets its "worker" adopted (each echoes). */
async function relayed(path = tempPath()) {
  const relay = new UnixRelay(path, silentLogger());
  const adopted: Socket[] = [];
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
    relay.accepted(socket, (s) => {
      adopted.push(s);
      s.on('error', () => {});
      s.pipe(s);
      s.resume();
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const loopbackPort = (server.address() as AddressInfo).port;
  await relay.listen(loopbackPort, 16);
  closers.push(() => {
    relay.close();
    for (const s of adopted) s.destroy();
    server.close();
  });
  return { relay, path, adopted, loopbackPort };
}

function unixClient(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path, allowHalfOpen: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
    closers.push(() => socket.destroy());
  });
}

const collect = (socket: Socket): { text: () => string; ended: () => boolean } => {
  let text = '';
  let ended = false;
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  socket.on('end', () => (ended = true));
  socket.on('error', () => {});
  return { text: () => text, ended: () => ended };
};

describe('UnixRelay', () => {
  it('joins each Unix connection to a loopback connection the worker adopts, bytes both ways', async () => {
    const { path, adopted } = await relayed();
    const clients = await Promise.all([unixClient(path), unixClient(path), unixClient(path)]);
    const seen = clients.map(collect);
    clients.forEach((c, i) => c.write(`hello from ${i}|`.repeat(100)));
    await until(() => seen.every((s, i) => s.text().length === `hello from ${i}|`.length * 100), 'every echo');
    seen.forEach((s, i) => expect(s.text()).toBe(`hello from ${i}|`.repeat(100)));
    expect(adopted).toHaveLength(3);
  });

  it("passes the client's FIN to the worker, and the worker's close back to the client", async () => {
    const { path, adopted } = await relayed();
    const client = await unixClient(path);
    const seen = collect(client);
    await until(() => adopted.length === 1, 'the adoption');
    const worker = adopted[0]!;
    const workerEnded = new Promise<void>((resolve) => worker.once('end', resolve));
    client.end('bye');
    await workerEnded;
    // The echo pipe ends the worker's side after its FIN: the client sees the echo, then its end.
    await until(() => seen.ended(), 'the end at the client');
    expect(seen.text()).toBe('bye');
  });

  it('closes a connection to the loopback listener that the relay did not open', async () => {
    const { loopbackPort, adopted } = await relayed();
    const stranger = connect(loopbackPort, '127.0.0.1');
    stranger.on('error', () => {});
    closers.push(() => stranger.destroy());
    await new Promise<void>((resolve) => stranger.once('close', () => resolve()));
    expect(adopted).toEqual([]);
  });

  it('close() ends the relayed connections and removes the socket file', async () => {
    const { relay, path } = await relayed();
    const client = await unixClient(path);
    // Half-open here: the end of the connection shows as its FIN (or a reset).
    const ended = new Promise<void>((resolve) => {
      client.once('end', () => resolve());
      client.once('close', () => resolve());
    });
    client.on('error', () => {});
    relay.close();
    await ended;
    await until(() => !existsSync(path), 'the socket file to go');
  });

  it('removes a stale socket file left by a server that died, then listens', async () => {
    const path = tempPath();
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    expect(existsSync(path)).toBe(true);
    const { path: listening } = await relayed(path);
    const client = await unixClient(listening);
    const seen = collect(client);
    client.write('alive');
    await until(() => seen.text() === 'alive', 'the echo');
  });

  it('leaves a live socket and a file that is not a socket alone, and fails to listen (EADDRINUSE)', async () => {
    const { path } = await relayed();
    const second = new UnixRelay(path, silentLogger());
    await expect(second.listen(1, 16)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    second.close();
    expect(existsSync(path)).toBe(true);
    const file = tempPath();
    writeFileSync(file, 'not a socket');
    const third = new UnixRelay(file, silentLogger());
    await expect(third.listen(1, 16)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    third.close();
    expect(existsSync(file)).toBe(true);
  });
});
