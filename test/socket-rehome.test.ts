import { describe, it, expect, afterEach } from 'vitest';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { rehomeSocket } from '../src/worker/socket-rehome.ts';

const FIXTURE = new URL('./fixtures/socket-rehome/worker.ts', import.meta.url);

let server: Server | null = null;
let worker: Worker | null = null;
afterEach(async () => {
  await worker?.terminate();
  worker = null;
  server?.close();
  server = null;
});

/** A listening server whose accepted sockets go to `onSocket`; returns the port. */
async function listen(onSocket: (socket: Socket) => void): Promise<number> {
  server = createServer(onSocket);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Reads everything the client gets until the server ends. */
async function readAll(client: Socket): Promise<string> {
  let text = '';
  client.setEncoding('latin1');
  client.on('data', (chunk: string) => {
    text += chunk;
  });
  await once(client, 'end');
  return text;
}

describe('rehomeSocket', () => {
  it('moves a socket transferred to a worker onto a fresh Socket, losing none of the bytes sent before the move', async () => {
    worker = new Worker(FIXTURE);
    const port = await listen((socket) => worker!.postMessage({ socket }, [socket as never]));
    const client = connect(port, '127.0.0.1');
    // Sent at once: these bytes may sit in the kernel before the worker has the socket.
    client.write('before the transfer;');
    const [report] = (await once(worker, 'message')) as [{ replaced: boolean; arrivedHasHandle: boolean }];
    expect(report).toEqual({ replaced: true, arrivedHasHandle: false });
    const received = readAll(client);
    client.write(' after it');
    client.end();
    expect(await received).toBe('BEFORE THE TRANSFER; AFTER IT');
  });

  it('works the same on a socket accepted in this thread (no transfer): reads, writes and half-close', async () => {
    const port = await listen((accepted) => {
      const socket = rehomeSocket(accepted);
      expect(socket).not.toBe(accepted);
      expect(accepted.destroyed).toBe(false);
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      socket.on('end', () => socket.end());
    });
    const client = connect(port, '127.0.0.1');
    const received = readAll(client);
    client.end('x'.repeat(200_000));
    expect(await received).toBe('x'.repeat(200_000));
  });

  it('keeps allowHalfOpen as the arrived socket had it', async () => {
    let rehomed: Socket | null = null;
    const port = await listen((accepted) => {
      accepted.allowHalfOpen = true;
      rehomed = rehomeSocket(accepted);
    });
    const client = connect(port, '127.0.0.1');
    await once(client, 'connect');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(rehomed!.allowHalfOpen).toBe(true);
    client.destroy();
    rehomed!.destroy();
  });

  it('returns the socket itself when it has no handle to move (already destroyed)', async () => {
    const port = await listen(() => {});
    const client = connect(port, '127.0.0.1');
    await once(client, 'connect');
    client.destroy();
    expect(rehomeSocket(client)).toBe(client);
  });
});
