import { describe, expect, it } from 'vitest';
import {
  extendedConnectRefusal,
  extendedConnectRequest,
  extendedConnectResponse,
  openingResponse,
  validateExtendedConnect,
  validateExtendedConnectResponse,
} from '../src/shared/extended-connect.ts';
import { HandshakeError } from '../src/shared/errors.ts';

const CONNECT = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/chat?x=1', ':authority': 'example.com:8443', 'sec-websocket-version': '13' };

function statusOf(headers: Record<string, string | string[] | undefined>): number {
  try {
    validateExtendedConnect(headers);
  } catch (error) {
    if (error instanceof HandshakeError) return error.status;
    throw error;
  }
  return 0;
}

describe('validateExtendedConnect (RFC 8441 §4, §5)', () => {
  it('returns the offer: no key, the authority as host, subprotocols, extensions, origin', () => {
    const info = validateExtendedConnect({ ...CONNECT, 'sec-websocket-protocol': 'a, b', 'sec-websocket-extensions': 'permessage-deflate', origin: 'https://app.example' });
    expect(info).toEqual({ key: '', version: 13, protocols: ['a', 'b'], extensionsHeader: 'permessage-deflate', origin: 'https://app.example', host: 'example.com:8443' });
  });

  it('refuses what is not a WebSocket CONNECT with 400 and another version (or none) with 426 naming 13', () => {
    expect(statusOf({ ...CONNECT, ':protocol': undefined })).toBe(400);
    expect(statusOf({ ...CONNECT, ':protocol': 'webtransport' })).toBe(400);
    expect(statusOf({ ...CONNECT, ':path': undefined })).toBe(400);
    expect(statusOf({ ...CONNECT, ':path': '*' })).toBe(400);
    expect(statusOf({ ...CONNECT, ':scheme': undefined })).toBe(400);
    expect(statusOf({ ...CONNECT, ':authority': undefined })).toBe(400);
    expect(statusOf({ ...CONNECT, 'sec-websocket-version': '13, 13' })).toBe(400);
    expect(statusOf({ ...CONNECT, origin: 'https://a, https://b' })).toBe(400);
    expect(statusOf({ ...CONNECT, 'sec-websocket-protocol': 'a a' })).toBe(400);
    expect(statusOf({ ...CONNECT, ':method': 'GET' })).toBe(405);
    for (const version of ['8', undefined]) {
      try {
        validateExtendedConnect({ ...CONNECT, 'sec-websocket-version': version });
        expect.unreachable();
      } catch (error) {
        expect((error as HandshakeError).status).toBe(426);
        // No Upgrade field: connection-specific fields are malformed in HTTP/2 (RFC 9113 §8.2.2).
        expect((error as HandshakeError).headers).toEqual({ 'sec-websocket-version': '13' });
      }
    }
  });
});

describe('the server answer', () => {
  it('opens with :status 200, the choices, and the app headers lowercased', () => {
    expect(extendedConnectResponse('chat', 'permessage-deflate', { 'X-Shard': '3', 'Set-Cookie': ['a=1', 'b=2'] })).toEqual({
      ':status': 200,
      'sec-websocket-protocol': 'chat',
      'sec-websocket-extensions': 'permessage-deflate',
      'x-shard': '3',
      'set-cookie': 'a=1, b=2',
    });
    expect(extendedConnectResponse(undefined, '', undefined)).toEqual({ ':status': 200 });
  });

  it('refuses connection-specific fields, handshake fields, a non-token subprotocol and injected values', () => {
    expect(() => extendedConnectResponse(undefined, undefined, { Connection: 'close' })).toThrow(TypeError);
    expect(() => extendedConnectResponse(undefined, undefined, { upgrade: 'websocket' })).toThrow(TypeError);
    expect(() => extendedConnectResponse(undefined, undefined, { 'Sec-WebSocket-Accept': 'x' })).toThrow(TypeError);
    expect(() => extendedConnectResponse('a b', undefined, undefined)).toThrow(TypeError);
    expect(() => extendedConnectResponse(undefined, undefined, { 'x-a': 'one\r\ntwo' })).toThrow(TypeError);
  });

  it('refuses with the status and the error headers a stream may carry', () => {
    expect(extendedConnectRefusal(426, { 'Sec-WebSocket-Version': '13', Upgrade: 'websocket', Connection: 'close' })).toEqual({
      ':status': 426,
      'content-type': 'text/plain; charset=utf-8',
      'sec-websocket-version': '13',
    });
  });

  it('frames the opening answer for the request: a 101 head, or :status 200 fields', () => {
    const h1 = openingResponse(false, 'dGhlIHNhbXBsZSBub25jZQ==', 'chat', undefined, undefined);
    expect(h1.http2).toBe(false);
    expect(!h1.http2 && h1.head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n');
    expect(openingResponse(true, '', 'chat', undefined, undefined)).toEqual({ http2: true, fields: { ':status': 200, 'sec-websocket-protocol': 'chat' } });
  });
});

describe('the client side', () => {
  it('builds the extended CONNECT', () => {
    expect(extendedConnectRequest({ authority: 'example.com', path: '/a?b', protocols: ['x', 'y'], extensions: 'permessage-deflate', origin: 'https://o.example', headers: { Authorization: 'Bearer t' } })).toEqual({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': '/a?b',
      ':authority': 'example.com',
      'sec-websocket-version': '13',
      'sec-websocket-protocol': 'x, y',
      'sec-websocket-extensions': 'permessage-deflate',
      origin: 'https://o.example',
      authorization: 'Bearer t',
    });
    expect(() => extendedConnectRequest({ authority: 'e', path: 'nope' })).toThrow(TypeError);
    expect(() => extendedConnectRequest({ authority: 'e', path: '/', protocols: ['x', 'x'] })).toThrow(TypeError);
    expect(() => extendedConnectRequest({ authority: 'e', path: '/', headers: { 'Sec-WebSocket-Key': 'k' } })).toThrow(TypeError);
    expect(() => extendedConnectRequest({ authority: 'e', path: '/', headers: { 'Keep-Alive': '1' } })).toThrow(TypeError);
  });

  it('accepts a 2xx with a subprotocol it offered, and fails anything else', () => {
    expect(validateExtendedConnectResponse({ ':status': '200', 'sec-websocket-protocol': 'x' }, ['x'])).toEqual({ protocol: 'x', extensionsHeader: undefined });
    expect(validateExtendedConnectResponse({ ':status': '204' }, [])).toEqual({ protocol: '', extensionsHeader: undefined });
    expect(() => validateExtendedConnectResponse({ ':status': '101' }, [])).toThrow(HandshakeError);
    expect(() => validateExtendedConnectResponse({ ':status': '403' }, [])).toThrow(/unexpected server response 403/);
    expect(() => validateExtendedConnectResponse({ ':status': '200', 'sec-websocket-protocol': 'z' }, ['x'])).toThrow(/not offered/);
  });
});
