import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, cleanup, clientFrame, openClient, rawWebSocket, startServer, wsUrl } from './helpers.ts';

afterEach(cleanup);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('idleTimeout', () => {
  it('keeps a quiet client that answers pings open past several timeouts', async () => {
    // 2 s: each ping may be answered within 1 s (two sweeps), time enough on a loaded machine.
    const server = await startServer({ idleTimeout: 2 });
    const client = await openClient(wsUrl(server, '/echo'));
    let pings = 0;
    client.ws.on('ping', () => pings++);
    await sleep(4500);
    expect(client.closeEvent).toBeNull();
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    // It stayed open because the server pinged it and the ws client answered each ping.
    expect(pings).toBeGreaterThanOrEqual(2);
    expect((await client.request('still here')).data.toString()).toBe('still here');
  });

  it('closes a peer that completes the handshake and then never answers, with 1001', async () => {
    const server = await startServer({ idleTimeout: 1 });
    const raw = await rawWebSocket(server.address().port, '/echo');
    const { code, skipped } = await raw.nextClose(5000);
    expect(code).toBe(1001);
    // The server pinged first, giving a live peer the chance to answer.
    expect(skipped.map((f) => f.opcode)).toContain(0x9);
    // Completing the close handshake: the server closes TCP.
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(1001);
    raw.socket.write(clientFrame(0x8, payload));
    await raw.waitEnded();
  });

  it('closes a quiet ws client too when the server sends no pings', async () => {
    const server = await startServer({ idleTimeout: 1, sendPings: false });
    const client = await openClient(wsUrl(server, '/echo'));
    const { code, reason } = await client.waitClosed(5000);
    expect(code).toBe(1001);
    expect(reason).toBe('idle timeout');
  });
});
