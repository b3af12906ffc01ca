/** The client's options: every default, and a clear error naming the option for each bad value. */
import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { CLIENT_OPTIONS, DEFAULT_JITTER, RECONNECT_OPTIONS, resolveClientOptions } from '../../src/client/client-options.ts';

describe('resolveClientOptions', () => {
  it('fills in every default', () => {
    const o = resolveClientOptions({});
    expect(o).toMatchObject({
      handshakeTimeout: 10,
      closeTimeout: 10,
      maxPayloadLength: 16 * 1024 * 1024,
      headers: {},
      origin: undefined,
      proxy: null,
      agent: null,
      followRedirects: false,
      maxRedirects: 10,
      reconnect: null,
    });
    // The default offer lets the server choose our window (client_max_window_bits without a value).
    expect(o.deflate).toEqual({ offer: expect.objectContaining({ clientMaxWindowBits: true }), header: 'permessage-deflate; client_max_window_bits', threshold: 128, level: 1, memLevel: 8 });
    for (const [name, spec] of Object.entries(CLIENT_OPTIONS)) expect(o[name as keyof typeof o]).toBe(spec.default);
  });

  it('reconnect: true takes every reconnect default', () => {
    expect(resolveClientOptions({ reconnect: true }).reconnect).toEqual({
      minDelay: RECONNECT_OPTIONS.minDelay.default,
      maxDelay: RECONNECT_OPTIONS.maxDelay.default,
      jitter: DEFAULT_JITTER,
      maxRetries: Infinity,
      minUptime: RECONNECT_OPTIONS.minUptime.default,
      shouldReconnect: null,
    });
    expect(resolveClientOptions({ reconnect: { minDelay: 0.1, maxDelay: 2, jitter: 0, maxRetries: 3 } }).reconnect).toMatchObject({ minDelay: 0.1, maxDelay: 2, jitter: 0, maxRetries: 3 });
    expect(resolveClientOptions({ reconnect: false }).reconnect).toBeNull();
  });

  it('formats the deflate offer once and checks its numbers', () => {
    const o = resolveClientOptions({ perMessageDeflate: { clientNoContextTakeover: true, serverMaxWindowBits: 10, threshold: 0, level: 9 } });
    expect(o.deflate?.header).toBe('permessage-deflate; client_no_context_takeover; server_max_window_bits=10');
    expect(o.deflate).toMatchObject({ threshold: 0, level: 9, memLevel: 8 });
    expect(resolveClientOptions({ perMessageDeflate: false }).deflate).toBeNull();
    expect(() => resolveClientOptions({ perMessageDeflate: { level: 10 } })).toThrow(/perMessageDeflate\.level/);
    expect(() => resolveClientOptions({ perMessageDeflate: { memLevel: 0 } })).toThrow(/perMessageDeflate\.memLevel/);
    expect(() => resolveClientOptions({ perMessageDeflate: { serverMaxWindowBits: 16 as 15 } })).toThrow(RangeError);
  });

  it('refuses headers the handshake sets, and values that could inject lines', () => {
    for (const name of ['Host', 'upgrade', 'Connection', 'Sec-WebSocket-Key', 'sec-websocket-version', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Origin', 'Content-Length', 'Transfer-Encoding']) {
      expect(() => resolveClientOptions({ headers: { [name]: 'x' } }), name).toThrow(/option headers: Header .* cannot be overridden/);
    }
    expect(() => resolveClientOptions({ headers: { 'X-Bad': 'a\r\nInjected: 1' } })).toThrow(/option headers: Invalid character/);
    expect(() => resolveClientOptions({ headers: { 'bad name': 'x' } })).toThrow(/option headers: Invalid header name/);
    expect(() => resolveClientOptions({ origin: 'https://a.example\r\nX: 1' })).toThrow(/option origin/);
    expect(resolveClientOptions({ headers: { Authorization: 'Bearer t', Cookie: ['a=1', 'b=2'] }, origin: 'https://app.example' })).toMatchObject({ origin: 'https://app.example' });
  });

  it('checks numbers, the proxy URL and the options that exclude each other', () => {
    expect(() => resolveClientOptions({ handshakeTimeout: 5000 })).toThrow(/handshakeTimeout .* seconds/);
    expect(() => resolveClientOptions({ maxPayloadLength: 0 })).toThrow(/maxPayloadLength/);
    expect(() => resolveClientOptions({ maxRedirects: -1 })).toThrow(/maxRedirects/);
    expect(() => resolveClientOptions({ followRedirects: 'yes' as unknown as boolean })).toThrow(/followRedirects/);
    expect(() => resolveClientOptions({ proxy: 'not a url' })).toThrow(/option proxy must be a URL/);
    expect(() => resolveClientOptions({ proxy: 'socks5://127.0.0.1:1080' })).toThrow(/http:\/\/ or https:\/\//);
    expect(resolveClientOptions({ proxy: 'http://u:p@127.0.0.1:3128' }).proxy?.href).toBe('http://u:p@127.0.0.1:3128/');
    expect(() => resolveClientOptions({ proxy: 'http://127.0.0.1:3128', agent: new Agent() })).toThrow(/agent and proxy exclude each other/);
    expect(() => resolveClientOptions({ reconnect: { minDelay: 5, maxDelay: 1 } })).toThrow(/maxDelay must be at least/);
    expect(() => resolveClientOptions({ reconnect: { jitter: 1.5 } })).toThrow(/jitter/);
    expect(() => resolveClientOptions({ reconnect: { maxRetries: 1.5 } })).toThrow(/maxRetries/);
    expect(() => resolveClientOptions({ reconnect: { shouldReconnect: 1 as unknown as () => boolean } })).toThrow(/shouldReconnect/);
    expect(() => resolveClientOptions({ tls: 'x' as unknown as object })).toThrow(/option tls must be an object/);
  });
});
