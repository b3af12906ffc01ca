import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { headEnd, parseRequestHead } from '../src/shared/request-head.ts';

const UPGRADE = 'GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

describe('parseRequestHead', () => {
  it('reads a WebSocket upgrade head: request line, headers as Node shapes them, its length', () => {
    const result = parseRequestHead(bytes(`${UPGRADE}\x81\x80`));
    expect(result.kind).toBe('upgrade');
    if (result.kind !== 'upgrade') return;
    expect(result.length).toBe(UPGRADE.length);
    expect(result.head).toMatchObject({ method: 'GET', url: '/chat?room=1', httpVersion: '1.1' });
    expect(result.head.headers).toEqual({
      host: 'example.com',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
    });
    expect(result.head.rawHeaders.slice(0, 4)).toEqual(['Host', 'example.com', 'Upgrade', 'websocket']);
  });

  it('waits for more while the bytes can still become "GET ..." and have no CRLF CRLF', () => {
    for (const cut of [0, 1, 3, 4, 40, UPGRADE.length - 1]) expect(parseRequestHead(bytes(UPGRADE.slice(0, cut))).kind).toBe('incomplete');
    expect(parseRequestHead(bytes('POS')).kind).toBe('other');
    expect(parseRequestHead(bytes('\x16\x03\x01')).kind).toBe('other'); // a TLS ClientHello on a plain port
  });

  it.each([
    ['another method', UPGRADE.replace('GET', 'POST')],
    ['HTTP/1.0', UPGRADE.replace('HTTP/1.1', 'HTTP/1.0')],
    ['an absolute-form target', UPGRADE.replace('/chat?room=1', 'http://example.com/chat')],
    ['a target with a byte above ASCII', UPGRADE.replace('/chat', '/ch\xe4t')],
    ['a bare LF line end', UPGRADE.replace('Upgrade: websocket\r\n', 'Upgrade: websocket\n')],
    ['an obs-fold continuation line', UPGRADE.replace('Connection: Upgrade\r\n', 'Connection: Upgrade\r\n ,keep-alive\r\n')],
    ['a space before the colon', UPGRADE.replace('Upgrade: websocket', 'Upgrade : websocket')],
    ['an empty field name', UPGRADE.replace('Host:', ':')],
    ['a control character in a value', UPGRADE.replace('example.com', 'exam\x01ple.com')],
    ['DEL in a value', UPGRADE.replace('example.com', 'example\x7f.com')],
    ['a body by Transfer-Encoding', UPGRADE.replace('Host:', 'Transfer-Encoding: chunked\r\nHost:')],
    ['a body by Content-Length', UPGRADE.replace('Host:', 'Content-Length: 5\r\nHost:')],
    ['no Upgrade field (a plain request)', UPGRADE.replace('Upgrade: websocket\r\n', '')],
    ['no upgrade in Connection (a plain request to Node too)', UPGRADE.replace('Connection: Upgrade', 'Connection: keep-alive')],
    ['more than 100 fields', UPGRADE.replace('Host:', 'X-A: 1\r\n'.repeat(100) + 'Host:')],
  ])('leaves %s to Node\'s parser', (_what, text) => {
    expect(parseRequestHead(bytes(text)).kind).toBe('other');
  });

  it('takes Content-Length: 0, obs-text in a value and optional whitespace around it', () => {
    const result = parseRequestHead(bytes(UPGRADE.replace('Host: example.com', 'Content-Length: 0\r\nX-Name:\t caf\xe9 \t\r\nHost: example.com')));
    expect(result.kind).toBe('upgrade');
    if (result.kind === 'upgrade') expect(result.head.headers['x-name']).toBe('caf\xe9');
  });

  it('finds the end of a head from where the previous look stopped', () => {
    const all = bytes(UPGRADE);
    expect(headEnd(all)).toBe(all.length);
    expect(headEnd(all, all.length - 4)).toBe(all.length);
    expect(headEnd(all.subarray(0, all.length - 1))).toBe(-1);
  });
});

// --- the same headers as Node's own parser ---------------------------------------------------

let server: Server;
const seen: ((req: IncomingMessage | Error) => void)[] = [];
beforeAll(async () => {
  server = createServer();
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    seen.shift()?.(req);
    socket.destroy();
  });
  server.on('clientError', (error: Error, socket: Socket) => {
    seen.shift()?.(error);
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});
afterAll(() => server.close());

/** What Node's HTTP server makes of `head`. */
async function nodeParse(head: Buffer): Promise<{ url: string; headers: IncomingHttpHeaders; rawHeaders: string[] }> {
  const got = new Promise<IncomingMessage | Error>((resolve) => seen.push(resolve));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  client.end(head);
  const req = await got;
  if (req instanceof Error) throw new Error(`Node refused ${JSON.stringify(head.toString('latin1'))}: ${req.message}`);
  return { url: req.url!, headers: { ...req.headers }, rawHeaders: req.rawHeaders };
}

describe('parseRequestHead against Node\'s parser', () => {
  const names = fc.constantFrom('Host', 'host', 'Cookie', 'Set-Cookie', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Authorization', 'User-Agent', 'X-Forwarded-For', 'X-Trace', 'Origin', 'ETag');
  const value = fc.stringMatching(/^[\x21-\x7e\x80-\xff]([\x20-\x7e\x80-\xff\t]{0,20}[\x21-\x7e\x80-\xff])?$/);
  const fields = fc.array(fc.tuple(names, value), { maxLength: 12 });

  it('gives the same url, headers and rawHeaders for random upgrade requests', async () => {
    await fc.assert(
      fc.asyncProperty(fields, fc.stringMatching(/^\/[\x21-\x7e]{0,30}$/), async (extra, target) => {
        const text = `GET ${target} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n${extra.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
        const ours = parseRequestHead(bytes(text));
        expect(ours.kind).toBe('upgrade');
        if (ours.kind !== 'upgrade') return;
        const theirs = await nodeParse(bytes(text));
        expect({ url: ours.head.url, headers: { ...ours.head.headers }, rawHeaders: [...ours.head.rawHeaders] }).toEqual(theirs);
      }),
      { numRuns: 60 },
    );
  });
});
