/** Where a 3xx leads, and which credentials may follow it. */
import { describe, expect, it } from 'vitest';
import { headersFor, keepsCredentials, redirectTarget } from '../../src/client/redirect.ts';

const url = (s: string): URL => new URL(s);

describe('redirectTarget', () => {
  it('resolves against the redirected URL and maps http(s) to ws(s)', () => {
    expect(redirectTarget('/next?x=1', url('ws://a.example:8080/start')).href).toBe('ws://a.example:8080/next?x=1');
    expect(redirectTarget('https://b.example/ws', url('ws://a.example/')).href).toBe('wss://b.example/ws');
    expect(redirectTarget('http://b.example:81/ws', url('wss://a.example/')).href).toBe('ws://b.example:81/ws');
    expect(redirectTarget('wss://b.example/ws#frag', url('ws://a.example/')).href).toBe('wss://b.example/ws');
  });

  it('refuses a Location that is no WebSocket URL', () => {
    expect(() => redirectTarget('ftp://b.example/', url('ws://a.example/'))).toThrow(SyntaxError);
    expect(() => redirectTarget('http://[bad', url('ws://a.example/'))).toThrow(/invalid URL/);
  });
});

describe('credentials across redirects', () => {
  it('keeps them on the same host and port, upgrades included, never down from wss to ws', () => {
    expect(keepsCredentials(url('ws://a.example/'), url('ws://a.example/other'))).toBe(true);
    expect(keepsCredentials(url('ws://a.example/'), url('wss://a.example/'))).toBe(true);
    expect(keepsCredentials(url('wss://a.example/'), url('ws://a.example/'))).toBe(false);
    expect(keepsCredentials(url('ws://a.example/'), url('ws://b.example/'))).toBe(false);
    expect(keepsCredentials(url('ws://a.example/'), url('ws://a.example:8080/'))).toBe(false);
    expect(keepsCredentials(url('ws://a.example/'), url('ws://sub.a.example/'))).toBe(false);
  });

  it('drops Authorization and Cookie (any case) where they may not go, and keeps the rest', () => {
    const headers = { authorization: 'Bearer t', COOKIE: 'sid=1', 'X-Trace': '7' };
    expect(headersFor(headers, url('ws://a.example/'), url('ws://b.example/'))).toEqual({ 'X-Trace': '7' });
    expect(headersFor(headers, url('ws://a.example/'), url('ws://a.example/next'))).toBe(headers);
  });

  it("turns the original URL's user and password into Basic credentials, unless Authorization was given", () => {
    const original = url('ws://us%20er:p%C3%A4ss@a.example/');
    expect(headersFor({}, original, original)).toEqual({ Authorization: `Basic ${Buffer.from('us er:päss').toString('base64')}` });
    expect(headersFor({ Authorization: 'Bearer t' }, original, original)).toEqual({ Authorization: 'Bearer t' });
    expect(headersFor({}, original, url('ws://b.example/'))).toEqual({});
    // Malformed percent-encoding is sent as written rather than throwing.
    expect(headersFor({}, url('ws://%E0%A4%A:x@a.example/'), url('ws://a.example/'))).toEqual({ Authorization: `Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}` });
  });
});
