/**
 * dialUpstream against real listeners on loopback: a scripted raw TCP server (to answer each way
 * a broken upstream can), the ws package, and a TLS server on 127.0.0.1.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { generateKey } from '../../src/shared/handshake.ts';
import { dialUpstream } from '../../src/worker/upstream-dial.ts';
import type { DialRequest, DialResult } from '../../src/worker/upstream-dial.ts';
import { scriptedUpstream, switchingProtocols } from '../support/scripted-upstream.ts';
import type { ScriptedUpstream } from '../support/scripted-upstream.ts';
import { testCert, testKey } from '../support/tls-fixture.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function scripted(answer: ((head: string, key: string) => Buffer | string) | null): Promise<ScriptedUpstream> {
  const upstream = await scriptedUpstream(answer);
  closers.push(() => upstream.close());
  return upstream;
}

const switching = switchingProtocols;

function request(url: string, overrides: Partial<DialRequest> = {}): DialRequest {
  const key = overrides.key ?? generateKey();
  const protocols = overrides.protocols ?? [];
  return {
    url,
    key,
    protocols,
    timeoutMs: 2000,
    tls: null,
    headers: {
      host: new URL(url).host,
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': key,
      'sec-websocket-version': '13',
      ...(protocols.length > 0 ? { 'sec-websocket-protocol': protocols.join(', ') } : {}),
    },
    ...overrides,
  };
}

function opened(result: DialResult): Extract<DialResult, { kind: 'open' }> {
  if (result.kind !== 'open') throw new Error(`expected an open upstream, got ${result.status}: ${result.reason}`);
  closers.push(() => result.socket.destroy());
  return result;
}

describe('dialUpstream', () => {
  it('opens against the ws package: the chosen subprotocol, and the socket carries frames both ways', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (offered) => [...offered].at(-1) ?? false });
    closers.push(() => wss.close());
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo:${data.toString()}`)));
    const port = (wss.address() as AddressInfo).port;
    const result = opened(await dialUpstream(request(`ws://127.0.0.1:${port}/x`, { protocols: ['a', 'b'] })));
    expect(result.info.protocol).toBe('b');
    expect(result.response.statusCode).toBe(101);
    // A masked text frame "hi" (RFC 6455 §5.3: a client masks), then the server's unmasked answer.
    const mask = [1, 2, 3, 4];
    result.socket.write(Buffer.from([0x81, 0x82, ...mask, 'h'.charCodeAt(0) ^ 1, 'i'.charCodeAt(0) ^ 2]));
    const reply = await new Promise<Buffer>((resolve) => result.socket.once('data', resolve));
    expect(reply.subarray(2).toString()).toBe('echo:hi');
  });

  it('sends the path, query and headers as given, and hands over the bytes that came with the 101', async () => {
    const frame = Buffer.from([0x81, 0x03, 0x61, 0x62, 0x63]);
    const up = await scripted((_head, key) => Buffer.concat([Buffer.from(switching(key), 'latin1'), frame]));
    const req = request(`ws://127.0.0.1:${up.port}/base/chat?room=1`);
    const result = opened(await dialUpstream({ ...req, headers: { ...req.headers, 'x-forwarded-for': '203.0.113.9', host: 'upstream.example' } }));
    expect(up.heads[0]).toMatch(/^GET \/base\/chat\?room=1 HTTP\/1\.1\r\n/);
    expect(up.heads[0]).toMatch(/\r\nx-forwarded-for: 203\.0\.113\.9/i);
    expect(up.heads[0]).toMatch(/\r\nhost: upstream\.example/i);
    expect(up.heads[0]!.match(/\r\nhost:/gi)).toHaveLength(1);
    expect(result.head.equals(frame)).toBe(true);
  });

  it.each([
    ['a refusal (403)', () => 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n', /answered the upgrade with 403/],
    ['a 200', () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', /answered the upgrade with 200/],
    ['a wrong Sec-WebSocket-Accept', () => switching('AAAAAAAAAAAAAAAAAAAAAA=='), /Accept/i],
    ['a subprotocol not offered', (key: string) => switching(key, 'Sec-WebSocket-Protocol: other\r\n'), /protocol/i],
  ])('gives 502 for %s, and the upstream does not back off (it answered)', async (_name, answer, reason) => {
    const up = await scripted((_head, key) => answer(key));
    const result = await dialUpstream(request(`ws://127.0.0.1:${up.port}/`, { protocols: ['mine'] }));
    expect(result).toMatchObject({ kind: 'failed', status: 502, unreachable: false });
    expect(result.kind === 'failed' && result.reason).toMatch(reason);
  });

  it('gives 502 for a refused connection, and the upstream backs off', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const result = await dialUpstream(request(`ws://127.0.0.1:${port}/`));
    expect(result).toMatchObject({ kind: 'failed', status: 502, unreachable: true });
    expect(result.kind === 'failed' && result.reason).toMatch(/ECONNREFUSED/);
  });

  it('gives 504 when the upstream accepts but never answers within the time limit', async () => {
    const up = await scripted(null);
    const started = Date.now();
    const result = await dialUpstream(request(`ws://127.0.0.1:${up.port}/`, { timeoutMs: 150 }));
    expect(result).toMatchObject({ kind: 'failed', status: 504, unreachable: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(up.heads).toHaveLength(1);
  });

  it('gives 502 when the upstream closes the connection without an answer', async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const result = await dialUpstream(request(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`));
    expect(result).toMatchObject({ kind: 'failed', status: 502, unreachable: true });
  });

  it('dials wss:// to an IP address, checking the certificate against the address (no server name sent)', async () => {
    let servername: string | false | undefined = 'unset';
    const server = createTlsServer({ cert: testCert, key: testKey }, (socket) => {
      servername = (socket as unknown as { servername: string | false }).servername;
      let head = '';
      socket.on('data', (chunk) => {
        head += chunk.toString('latin1');
        const key = /sec-websocket-key: (\S+)/i.exec(head)?.[1];
        if (head.includes('\r\n\r\n') && key !== undefined) socket.write(switching(key));
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const result = opened(await dialUpstream(request(`wss://127.0.0.1:${port}/`, { tls: { ca: testCert } })));
    expect(result.response.statusCode).toBe(101);
    expect(servername).toBe(false);
    // Without the CA the self-signed certificate is refused: 502, never a 101.
    const refused = await dialUpstream(request(`wss://127.0.0.1:${port}/`));
    expect(refused).toMatchObject({ kind: 'failed', status: 502 });
  });

  it('settles with 502 (never rejects) when Node refuses the TLS options themselves', async () => {
    const result = await dialUpstream(request('wss://127.0.0.1:1/', { tls: { ca: 5 as never } }));
    expect(result).toMatchObject({ kind: 'failed', status: 502, unreachable: false });
  });
});
