import { describe, it, expect, afterEach } from 'vitest';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { rehomeForReading, rehomeSocket } from '../src/worker/socket-rehome.ts';

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

  it('works the same on a socket accepted in this thread (no transfer): reads, writes and half-close; the server lets go of the old object', async () => {
    let counted = -1;
    const port = await listen((accepted) => {
      const socket = rehomeSocket(accepted);
      expect(socket).not.toBe(accepted);
      // Its handle moved, and with it the server's count of it: the server holds nothing now.
      server!.getConnections((_error, count) => (counted = count));
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      socket.on('end', () => socket.end());
    });
    const client = connect(port, '127.0.0.1');
    const received = readAll(client);
    client.end('x'.repeat(200_000));
    expect(await received).toBe('x'.repeat(200_000));
    expect(counted).toBe(0);
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

describe('rehomeForReading', () => {
  it('moves a socket to one that reads into a reused buffer, handing back what the old one had buffered, then echoes through it', async () => {
    const buffer = Buffer.alloc(16);
    const pending: Buffer[] = [];
    const port = await listen((accepted) => {
      // As after Node's HTTP upgrade: not flowing, what arrives waits in the readable buffer.
      accepted.readableFlowing = null;
      accepted.once('readable', () => {
        const moved = rehomeForReading(accepted, {
          buffer,
          callback(this: Socket, bytes, into) {
            // Reads land in the one buffer, and this is the new socket.
            expect(into.buffer).toBe(buffer.buffer);
            this.write(Buffer.from(into.subarray(0, bytes)).toString('latin1').toUpperCase(), 'latin1');
            return true;
          },
        })!;
        pending.push(...moved.pending);
        moved.socket.write(Buffer.concat(pending).toString('latin1'), 'latin1');
        moved.socket.on('end', () => moved.socket.end());
      });
    });
    const client = connect(port, '127.0.0.1');
    client.write('first;');
    const received = readAll(client);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Longer than the 16-byte buffer: arrives in several reads.
    client.end(' and then more than sixteen bytes');
    expect(Buffer.concat(pending).toString()).toBe('first;');
    expect(await received).toBe('first; AND THEN MORE THAN SIXTEEN BYTES');
  });

  it('leaves a TLS socket alone (its reads come out of the TLS layer)', async () => {
    const key = readFileSync(new URL('./fixtures/tls/key.pem', import.meta.url));
    const cert = readFileSync(new URL('./fixtures/tls/cert.pem', import.meta.url));
    const tlsServer = createTlsServer({ key, cert }, (secure) => {
      expect(rehomeForReading(secure as unknown as Socket, { buffer: Buffer.alloc(16), callback: () => true })).toBeNull();
      secure.end('ok');
    });
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
    const client = tlsConnect({ port: (tlsServer.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
    const text = await readAll(client as unknown as Socket);
    tlsServer.close();
    expect(text).toBe('ok');
  });
});
