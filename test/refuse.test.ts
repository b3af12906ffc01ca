import { describe, it, expect, afterEach } from 'vitest';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { once } from 'node:events';
import { refuse } from '../src/runtime/refuse.ts';

let server: Server | null = null;
afterEach(() => {
  server?.close();
  server = null;
});

/** A server that refuses every socket with `status`; resolves with the port and the server side of each socket. */
async function refusing(status: 400 | 503): Promise<{ port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  server = createServer((socket) => {
    accepted.push(socket);
    refuse(socket, status, 'no thanks');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, accepted };
}

describe('refuse', () => {
  it('answers with the status and its message, then ends the connection', async () => {
    const { port } = await refusing(503);
    const client = connect(port, '127.0.0.1');
    client.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    let text = '';
    client.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
    await once(client, 'close');
    expect(text).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(text).toContain('no thanks');
  });

  it('closes the server side once the peer closes, and a reset from the peer is no error', async () => {
    const { port, accepted } = await refusing(400);
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    await once(client, 'data');
    client.resetAndDestroy();
    // An unheard 'error' would be an uncaught exception here; the refused socket just closes.
    // (Not events.once: it rejects on 'error', which refuse() deliberately leaves unheard of.)
    await new Promise((resolve) => accepted[0]!.once('close', resolve));
    expect(accepted[0]!.destroyed).toBe(true);
  });
});
