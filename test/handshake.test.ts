import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { HandshakeError, type HandshakeStatus } from '../src/shared/errors.ts';
import {
  CLIENT_HANDSHAKE_FAILURE,
  buildErrorResponse,
  buildUpgradeRequest,
  upgradeRequestFields,
  buildUpgradeResponse,
  computeAcceptKey,
  generateKey,
  isValidKey,
  selectSubprotocol,
  validateUpgradeRequest,
  validateUpgradeResponse,
  type ReceivedHeaders,
  type UpgradeRequestHead,
  type UpgradeRequestOptions,
} from '../src/shared/handshake.ts';

// RFC 6455 §1.3 / §4.2.2 example.
const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

const BASE_HEADERS: Record<string, string> = {
  host: 'server.example.com',
  upgrade: 'websocket',
  connection: 'Upgrade',
  'sec-websocket-key': RFC_KEY,
  'sec-websocket-version': '13',
};

/** A valid request with some headers replaced; `undefined` removes one. */
function request(overrides: Record<string, string | string[] | undefined> = {}, method = 'GET', httpVersion = '1.1'): UpgradeRequestHead {
  const headers: Record<string, string | string[]> = { ...BASE_HEADERS };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete headers[name];
    else headers[name] = value;
  }
  return { method, httpVersion, headers };
}

function handshakeError(fn: () => unknown): HandshakeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HandshakeError);
    return err as HandshakeError;
  }
  return expect.fail('expected a HandshakeError');
}

const refusal = (req: UpgradeRequestHead): HandshakeStatus => handshakeError(() => validateUpgradeRequest(req)).status;

describe('computeAcceptKey', () => {
  it('matches the RFC 6455 example', () => {
    expect(computeAcceptKey(RFC_KEY)).toBe(RFC_ACCEPT);
  });
});

describe('isValidKey', () => {
  it('accepts base64 of exactly 16 bytes only', () => {
    expect(isValidKey(RFC_KEY)).toBe(true);
    expect(isValidKey(Buffer.alloc(15, 1).toString('base64'))).toBe(false); // 20 chars, no padding
    expect(isValidKey(Buffer.alloc(17, 1).toString('base64'))).toBe(false); // 24 chars, one "="
    expect(isValidKey(`${RFC_KEY.slice(0, 21)}-==`)).toBe(false); // base64url alphabet
    expect(isValidKey(`${RFC_KEY.slice(0, 22)}=`)).toBe(false);
    expect(isValidKey(`${RFC_KEY} `)).toBe(false);
    expect(isValidKey(`${RFC_KEY.slice(0, 21)}\u0141==`)).toBe(false); // would truncate to "A"
  });
});

describe('validateUpgradeRequest', () => {
  it('accepts the RFC 6455 §1.2 example and returns what it offers', () => {
    const info = validateUpgradeRequest(
      request({
        origin: 'http://example.com',
        'sec-websocket-protocol': 'chat, superchat',
        'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
      }),
    );
    expect(info).toEqual({
      key: RFC_KEY,
      version: 13,
      protocols: ['chat', 'superchat'],
      extensionsHeader: 'permessage-deflate; client_max_window_bits',
      origin: 'http://example.com',
      host: 'server.example.com',
    });
  });

  it('defaults to no protocols, extensions or origin', () => {
    const info = validateUpgradeRequest(request());
    expect(info.protocols).toEqual([]);
    expect(info.extensionsHeader).toBeUndefined();
    expect(info.origin).toBeUndefined();
  });

  it('refuses any method but GET with 405 and Allow: GET', () => {
    for (const method of ['POST', 'get', 'HEAD', 'CONNECT', undefined]) {
      const err = handshakeError(() => validateUpgradeRequest({ ...request(), method }));
      expect(err.status).toBe(405);
      expect(err.headers).toEqual({ Allow: 'GET' });
    }
  });

  it('requires HTTP/1.1 or higher', () => {
    expect(refusal(request({}, 'GET', '1.0'))).toBe(400);
    expect(refusal(request({}, 'GET', '0.9'))).toBe(400);
    expect(refusal(request({}, 'GET', ''))).toBe(400);
    expect(refusal(request({}, 'GET', '1.'))).toBe(400);
    expect(refusal(request({}, 'GET', '1.1x'))).toBe(400);
    expect(validateUpgradeRequest(request({}, 'GET', '1.2')).version).toBe(13);
    expect(validateUpgradeRequest(request({}, 'GET', '2.0')).version).toBe(13);
  });

  it('requires a single non-empty Host', () => {
    expect(refusal(request({ host: undefined }))).toBe(400);
    expect(refusal(request({ host: '' }))).toBe(400);
    expect(refusal(request({ host: ['a.example', 'b.example'] }))).toBe(400);
    expect(validateUpgradeRequest(request({ host: ['a.example'] })).host).toBe('a.example');
  });

  it('answers a request without Upgrade with 426 Upgrade: websocket', () => {
    const err = handshakeError(() => validateUpgradeRequest(request({ upgrade: undefined })));
    expect(err.status).toBe(426);
    expect(err.headers).toEqual({ Upgrade: 'websocket' });
  });

  it('refuses an Upgrade to another protocol with 400', () => {
    expect(refusal(request({ upgrade: 'h2c' }))).toBe(400);
    expect(refusal(request({ upgrade: 'websocket/13' }))).toBe(400);
    expect(refusal(request({ upgrade: 'web socket' }))).toBe(400);
    expect(refusal(request({ upgrade: '' }))).toBe(400);
  });

  it('accepts Upgrade in any case and within a list', () => {
    for (const upgrade of ['WebSocket', 'WEBSOCKET', 'h2c, websocket', 'HTTP/2.0, websocket']) {
      expect(validateUpgradeRequest(request({ upgrade })).key).toBe(RFC_KEY);
    }
    expect(validateUpgradeRequest(request({ upgrade: ['h2c', 'websocket'] })).key).toBe(RFC_KEY);
  });

  it('requires the upgrade connection option, in any case and within a list', () => {
    for (const connection of ['keep-alive, Upgrade', 'UPGRADE', 'upgrade,keep-alive', ' , Upgrade']) {
      expect(validateUpgradeRequest(request({ connection })).key).toBe(RFC_KEY);
    }
    expect(validateUpgradeRequest(request({ connection: ['keep-alive', 'Upgrade'] })).key).toBe(RFC_KEY);
    for (const connection of [undefined, '', 'keep-alive', 'upgraded', 'keep-alive upgrade', 'upgrade;x']) {
      expect(refusal(request({ connection })), String(connection)).toBe(400);
    }
  });

  it('answers any version but 13 with 426 and Sec-WebSocket-Version: 13', () => {
    for (const version of [undefined, '8', '12', '14', '013', '13.0', '', 'thirteen']) {
      const err = handshakeError(() => validateUpgradeRequest(request({ 'sec-websocket-version': version })));
      expect(err.status, String(version)).toBe(426);
      expect(err.headers['Sec-WebSocket-Version']).toBe('13');
    }
  });

  it('refuses a repeated Sec-WebSocket-Version with 400, not 426', () => {
    expect(refusal(request({ 'sec-websocket-version': '13, 13' }))).toBe(400);
    expect(refusal(request({ 'sec-websocket-version': '13, 8' }))).toBe(400);
    expect(refusal(request({ 'sec-websocket-version': ['13', '13'] }))).toBe(400);
  });

  it('requires a key that is base64 of exactly 16 bytes', () => {
    const bad = [
      undefined,
      '',
      Buffer.alloc(15, 7).toString('base64'),
      Buffer.alloc(17, 7).toString('base64'),
      Buffer.alloc(16, 7).toString('base64').slice(0, 22), // padding dropped
      Buffer.alloc(16, 7).toString('base64url'),
      `${RFC_KEY.slice(0, 10)}*${RFC_KEY.slice(11)}`,
      'a'.repeat(100 * 1024),
    ];
    for (const key of bad) expect(refusal(request({ 'sec-websocket-key': key })), String(key).slice(0, 30)).toBe(400);
  });

  it('refuses a repeated Sec-WebSocket-Key with 400', () => {
    const other = generateKey();
    expect(refusal(request({ 'sec-websocket-key': `${RFC_KEY}, ${other}` }))).toBe(400);
    expect(refusal(request({ 'sec-websocket-key': [RFC_KEY, other] }))).toBe(400);
    expect(handshakeError(() => validateUpgradeRequest(request({ 'sec-websocket-key': `${RFC_KEY}, ${other}` }))).message).toMatch(/Duplicate/);
  });

  it('refuses a malformed Sec-WebSocket-Protocol with 400', () => {
    for (const p of ['', 'chat,', 'chat, chat', 'chat;v=1', 'a b']) expect(refusal(request({ 'sec-websocket-protocol': p }))).toBe(400);
  });

  it('joins repeated Sec-WebSocket-Protocol headers into one list', () => {
    expect(validateUpgradeRequest(request({ 'sec-websocket-protocol': ['chat', 'superchat'] })).protocols).toEqual(['chat', 'superchat']);
    expect(refusal(request({ 'sec-websocket-protocol': ['chat', 'chat'] }))).toBe(400);
  });

  it('refuses a repeated Origin with 400', () => {
    expect(refusal(request({ origin: 'https://a.example, https://b.example' }))).toBe(400);
    expect(refusal(request({ origin: ['https://a.example', 'https://b.example'] }))).toBe(400);
  });

  it('handles pathological headers quickly and correctly', () => {
    const commas = ' ,'.repeat(10_000);
    expect(refusal(request({ connection: commas }))).toBe(400);
    expect(refusal(request({ upgrade: commas }))).toBe(400);
    expect(refusal(request({ 'sec-websocket-protocol': commas }))).toBe(400);
    const long = 'a'.repeat(100 * 1024);
    expect(validateUpgradeRequest(request({ 'sec-websocket-protocol': long })).protocols).toEqual([long]);
    expect(refusal(request({ connection: long }))).toBe(400);
    expect(refusal(request({ 'sec-websocket-version': long }))).toBe(426);
  });

  it('treats __proto__ and constructor as plain names and headers', () => {
    const info = validateUpgradeRequest(request({ 'sec-websocket-protocol': '__proto__, constructor' }));
    expect(info.protocols).toEqual(['__proto__', 'constructor']);
    const headers: Record<string, string> = Object.assign(Object.create(null) as Record<string, string>, BASE_HEADERS);
    expect(validateUpgradeRequest({ method: 'GET', httpVersion: '1.1', headers }).key).toBe(RFC_KEY);
    // Own "__proto__" / "constructor" header keys are plain headers: no prototype is set or read.
    const odd = JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": "x"}') as Record<string, unknown>;
    const withOdd = { ...BASE_HEADERS, ...odd } as ReceivedHeaders;
    expect(validateUpgradeRequest({ method: 'GET', httpVersion: '1.1', headers: withOdd }).host).toBe('server.example.com');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('throws nothing but HandshakeError on random headers', () => {
    const value = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: fc.constantFrom('a', 'Upgrade', 'websocket', '13', ',', ' ', '\t', '/', '='), maxLength: 8 }),
      fc.constant(RFC_KEY),
      fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
    );
    const names = ['host', 'upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'origin', 'sec-websocket-extensions'];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), value), fc.constantFrom('GET', 'POST'), fc.constantFrom('1.1', '1.0', '2.0', 'x'), (headers, method, httpVersion) => {
        try {
          const info = validateUpgradeRequest({ method, httpVersion, headers });
          expect(isValidKey(info.key)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(HandshakeError);
        }
      }),
    );
  });
});

describe('selectSubprotocol', () => {
  it('picks the first offer, in the client order, that the server supports', () => {
    expect(selectSubprotocol(['superchat', 'chat'], ['chat', 'superchat'])).toBe('superchat');
    expect(selectSubprotocol(['a', 'chat'], ['chat'])).toBe('chat');
    expect(selectSubprotocol(['a'], ['chat'])).toBeUndefined();
    expect(selectSubprotocol([], ['chat'])).toBeUndefined();
    expect(selectSubprotocol(['Chat'], ['chat'])).toBeUndefined(); // case-sensitive
  });

  it('lets a selector function decide, among the offers only', () => {
    expect(selectSubprotocol(['a', 'b'], (offered) => offered[1])).toBe('b');
    expect(selectSubprotocol(['a', 'b'], () => undefined)).toBeUndefined();
    expect(() => selectSubprotocol(['a'], () => 'c')).toThrow(TypeError);
    let called = false;
    expect(
      selectSubprotocol([], () => {
        called = true;
        return 'x';
      }),
    ).toBeUndefined();
    expect(called).toBe(false);
  });

  it('treats __proto__ and constructor as plain names', () => {
    expect(selectSubprotocol(['__proto__', 'constructor', 'chat'], ['chat'])).toBe('chat');
    expect(selectSubprotocol(['constructor'], ['chat'])).toBeUndefined();
    expect(selectSubprotocol(['toString', '__proto__'], ['__proto__'])).toBe('__proto__');
  });
});

describe('buildUpgradeResponse', () => {
  it('builds the RFC 6455 §1.3 response', () => {
    expect(buildUpgradeResponse({ key: RFC_KEY, protocol: 'chat' })).toBe(
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        'Sec-WebSocket-Protocol: chat\r\n\r\n',
    );
  });

  it('adds extensions and extra headers, one line per array element', () => {
    const text = buildUpgradeResponse({
      key: RFC_KEY,
      extensions: 'permessage-deflate; server_no_context_takeover',
      headers: { 'Set-Cookie': ['a=1', 'b=2'], 'X-Shard': '3' },
    });
    expect(text).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        'Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n' +
        'Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Shard: 3\r\n\r\n',
    );
    expect(buildUpgradeResponse({ key: RFC_KEY, extensions: '' })).not.toMatch(/Extensions/);
  });

  it('refuses header injection with TypeError', () => {
    const bad: Array<() => unknown> = [
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': 'v\r\nSet-Cookie: evil=1' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': 'v\nX-B: 1' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': 'v\rX-B: 1' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': 'v\0' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': 'v\u010d\u010aX-B: 1' } }), // CR LF after Latin-1 truncation
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': ['ok', 'v\r\n'] } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A\r\nX-B': 'v' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X A': 'v' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { '': 'v' } }),
      () => buildUpgradeResponse({ key: RFC_KEY, headers: { 'X-A': 1 as unknown as string } }),
      () => buildUpgradeResponse({ key: RFC_KEY, protocol: 'chat\r\nX-B: 1' }),
      () => buildUpgradeResponse({ key: RFC_KEY, protocol: 'chat, superchat' }),
      () => buildUpgradeResponse({ key: RFC_KEY, protocol: '' }),
      () => buildUpgradeResponse({ key: RFC_KEY, extensions: 'permessage-deflate\r\nX-B: 1' }),
    ];
    for (const fn of bad) expect(fn).toThrow(TypeError);
  });

  it('refuses to override the handshake headers', () => {
    for (const name of ['Upgrade', 'connection', 'Sec-WebSocket-Accept', 'SEC-WEBSOCKET-PROTOCOL', 'Sec-WebSocket-Extensions', 'Content-Length']) {
      expect(() => buildUpgradeResponse({ key: RFC_KEY, headers: { [name]: 'x' } }), name).toThrow(TypeError);
    }
  });

  it('treats a __proto__ header name as a plain header', () => {
    const headers = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
    expect(buildUpgradeResponse({ key: RFC_KEY, headers })).toContain('\r\n__proto__: x\r\n');
  });
});

describe('buildErrorResponse', () => {
  it('builds a complete response that closes the connection', () => {
    expect(buildErrorResponse(400, 'Missing Host header')).toBe(
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n\r\nMissing Host header',
    );
  });

  it('defaults the body to the reason phrase and counts UTF-8 bytes', () => {
    expect(buildErrorResponse(403)).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*Content-Length: 9\r\n\r\nForbidden$/);
    const text = buildErrorResponse(400, 'é€');
    expect(text).toContain('Content-Length: 5\r\n');
    expect(Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8')).toBe('é€');
  });

  it('carries a HandshakeError status, message and headers; a 426 lists upgrade in Connection', () => {
    const err = handshakeError(() => validateUpgradeRequest(request({ 'sec-websocket-version': '8' })));
    const text = buildErrorResponse(err.status, err.message, err.headers);
    expect(text).toMatch(/^HTTP\/1\.1 426 Upgrade Required\r\n/);
    expect(text).toContain('\r\nConnection: Upgrade, close\r\n');
    expect(text).toContain('\r\nSec-WebSocket-Version: 13\r\n');
    expect(text).toContain('\r\nUpgrade: websocket\r\n');
    expect(buildErrorResponse(405, undefined, { Allow: 'GET' })).toContain('\r\nAllow: GET\r\n');
  });

  it('refuses header injection, overriding its own headers, and unknown statuses', () => {
    expect(() => buildErrorResponse(400, 'x', { 'X-A': 'v\r\nX-B: 1' })).toThrow(TypeError);
    expect(() => buildErrorResponse(400, 'x', { 'Content-Length': '0' })).toThrow(TypeError);
    expect(() => buildErrorResponse(400, 'x', { Connection: 'keep-alive' })).toThrow(TypeError);
    expect(() => buildErrorResponse(302 as HandshakeStatus)).toThrow(TypeError);
  });
});

describe('client side', () => {
  it('generates valid, distinct keys', () => {
    const a = generateKey();
    expect(isValidKey(a)).toBe(true);
    expect(generateKey()).not.toBe(a);
  });

  it('builds the RFC 6455 §1.2 request', () => {
    expect(
      buildUpgradeRequest({ host: 'server.example.com', path: '/chat', key: RFC_KEY, protocols: ['chat', 'superchat'], origin: 'http://example.com' }),
    ).toBe(
      'GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n` +
        'Sec-WebSocket-Protocol: chat, superchat\r\nOrigin: http://example.com\r\n\r\n',
    );
  });

  it('adds extensions and extra headers', () => {
    const text = buildUpgradeRequest({ host: 'h:8080', path: '/?a=1', key: RFC_KEY, extensions: 'permessage-deflate', headers: { Authorization: 'Bearer t' } });
    expect(text).toContain('\r\nSec-WebSocket-Extensions: permessage-deflate\r\nAuthorization: Bearer t\r\n\r\n');
    expect(text).not.toContain('Sec-WebSocket-Protocol');
  });

  it('gives the same fields as a flat list for node:http, in the order sent', () => {
    expect(upgradeRequestFields({ host: 'h', path: '/', key: RFC_KEY, protocols: ['chat'], origin: 'https://o', headers: { Cookie: ['a=1', 'b=2'] } })).toEqual([
      'Host', 'h',
      'Upgrade', 'websocket',
      'Connection', 'Upgrade',
      'Sec-WebSocket-Key', RFC_KEY,
      'Sec-WebSocket-Version', '13',
      'Sec-WebSocket-Protocol', 'chat',
      'Origin', 'https://o',
      'Cookie', 'a=1',
      'Cookie', 'b=2',
    ]);
    expect(() => upgradeRequestFields({ host: 'h', path: '/', key: RFC_KEY, headers: { Origin: 'x' } })).toThrow(/cannot be overridden/);
  });

  it('refuses bad paths, hosts, keys, subprotocols and header injection with TypeError', () => {
    const base = { host: 'h', path: '/', key: RFC_KEY };
    const bad: UpgradeRequestOptions[] = [
      { ...base, path: '' },
      { ...base, path: 'chat' },
      { ...base, path: '/a b' },
      { ...base, path: '/a\r\nX-B: 1' },
      { ...base, path: '/a#frag' },
      { ...base, path: '/\u00e9' },
      { ...base, host: '' },
      { ...base, host: 'h\r\nX-B: 1' },
      { ...base, host: 'a b' },
      { ...base, key: 'short' },
      { ...base, protocols: ['chat', 'chat'] },
      { ...base, protocols: ['a b'] },
      { ...base, protocols: [''] },
      { ...base, origin: 'http://x\r\nX-B: 1' },
      { ...base, extensions: 'x\n' },
      { ...base, headers: { 'X-A': 'v\r\nX-B: 1' } },
      { ...base, headers: { Host: 'other' } },
      { ...base, headers: { 'sec-websocket-key': RFC_KEY } },
    ];
    for (const opts of bad) expect(() => buildUpgradeRequest(opts), JSON.stringify(opts)).toThrow(TypeError);
  });

  const good = (headers: Record<string, string | string[] | undefined> = {}, statusCode = 101) => {
    const all: Record<string, string | string[] | undefined> = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': RFC_ACCEPT, ...headers };
    return { statusCode, headers: all };
  };
  const clientFailure = (res: ReturnType<typeof good>, protocols: readonly string[] = []): string => {
    const err = handshakeError(() => validateUpgradeResponse(res, { key: RFC_KEY, protocols }));
    expect(err.status).toBe(CLIENT_HANDSHAKE_FAILURE);
    return err.message;
  };

  it('accepts a valid response and returns the protocol and extensions', () => {
    expect(validateUpgradeResponse(good(), { key: RFC_KEY, protocols: [] })).toEqual({ protocol: '', extensionsHeader: undefined });
    expect(
      validateUpgradeResponse(good({ 'sec-websocket-protocol': 'chat', 'sec-websocket-extensions': 'permessage-deflate', upgrade: 'WebSocket', connection: 'keep-alive, upgrade' }), {
        key: RFC_KEY,
        protocols: ['superchat', 'chat'],
      }),
    ).toEqual({ protocol: 'chat', extensionsHeader: 'permessage-deflate' });
  });

  it('accepts a server that selects none of the offered subprotocols', () => {
    expect(validateUpgradeResponse(good(), { key: RFC_KEY, protocols: ['chat'] }).protocol).toBe('');
  });

  it('fails on each violation of RFC 6455 §4.1 with status 400', () => {
    expect(clientFailure(good({}, 200))).toMatch(/unexpected server response 200/);
    expect(clientFailure(good({}, 426))).toMatch(/426/);
    expect(clientFailure(good({ upgrade: undefined }))).toMatch(/Upgrade/);
    expect(clientFailure(good({ upgrade: 'h2c' }))).toMatch(/Upgrade/);
    expect(clientFailure(good({ upgrade: 'websocket, h2c' }))).toMatch(/Upgrade/);
    expect(clientFailure(good({ connection: undefined }))).toMatch(/Connection/);
    expect(clientFailure(good({ connection: 'keep-alive' }))).toMatch(/Connection/);
    expect(clientFailure(good({ connection: 'up grade' }))).toMatch(/Connection/);
    expect(clientFailure(good({ 'sec-websocket-accept': undefined }))).toMatch(/Accept/);
    expect(clientFailure(good({ 'sec-websocket-accept': computeAcceptKey(generateKey()) }))).toMatch(/Accept/);
    expect(clientFailure(good({ 'sec-websocket-accept': RFC_ACCEPT.toLowerCase() }))).toMatch(/Accept/);
    expect(clientFailure(good({ 'sec-websocket-accept': [RFC_ACCEPT, RFC_ACCEPT] }))).toMatch(/Accept/);
    expect(clientFailure(good({ 'sec-websocket-protocol': 'chat' }), [])).toMatch(/none was offered/);
    expect(clientFailure(good({ 'sec-websocket-protocol': 'other' }), ['chat'])).toMatch(/not offered/);
    expect(clientFailure(good({ 'sec-websocket-protocol': '' }), ['chat'])).toMatch(/not offered/);
    expect(clientFailure(good({ 'sec-websocket-protocol': 'chat, superchat' }), ['chat', 'superchat'])).toMatch(/more than one/);
    expect(clientFailure(good({ 'sec-websocket-protocol': ['chat', 'chat'] }), ['chat'])).toMatch(/more than one/);
    expect(clientFailure(good({ 'sec-websocket-protocol': '__proto__' }), ['chat'])).toMatch(/not offered/);
  });
});

/** Reads one HTTP response head from a raw socket and parses it the way Node would. */
async function readResponseHead(socket: import('node:net').Socket): Promise<{ statusCode: number; headers: Record<string, string> }> {
  let text = '';
  for await (const chunk of socket) {
    text += (chunk as Buffer).toString('latin1');
    if (text.includes('\r\n\r\n')) break;
  }
  const [statusLine = '', ...lines] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { statusCode: Number(statusLine.split(' ')[1]), headers };
}

describe('interop with ws', () => {
  it('our request and response check against a ws server', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    try {
      const { port } = wss.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      const key = generateKey();
      const protocols = ['superchat', 'chat'];
      socket.write(buildUpgradeRequest({ host: `127.0.0.1:${port}`, path: '/', key, protocols }), 'latin1');
      const res = await readResponseHead(socket);
      expect(res.statusCode).toBe(101);
      // ws picks the client's first offer by default.
      expect(validateUpgradeResponse(res, { key, protocols })).toEqual({ protocol: 'superchat', extensionsHeader: undefined });
      socket.destroy();
    } finally {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  it('a ws client opens against our handshake, and reads our 426', async () => {
    const server = createServer();
    // Upgraded sockets leave the server's bookkeeping (and it allows half-open): destroy them ourselves.
    const upgraded = new Set<import('node:stream').Duplex>();
    server.on('upgrade', (req, socket) => {
      upgraded.add(socket);
      try {
        const info = validateUpgradeRequest(req);
        const protocol = selectSubprotocol(info.protocols, ['chat']);
        socket.write(buildUpgradeResponse({ key: info.key, protocol }), 'latin1');
      } catch (err) {
        if (!(err instanceof HandshakeError)) throw err;
        socket.end(buildErrorResponse(err.status, err.message, err.headers), 'latin1');
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;

      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['superchat', 'chat']);
      await once(ws, 'open');
      expect(ws.protocol).toBe('chat');
      ws.terminate();

      const old = new WebSocket(`ws://127.0.0.1:${port}/`, { protocolVersion: 8 });
      old.on('error', () => {});
      const [, res] = (await once(old, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
      expect(res.statusCode).toBe(426);
      expect(res.headers['sec-websocket-version']).toBe('13');
      res.resume();
      old.terminate();
    } finally {
      for (const socket of upgraded) socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
