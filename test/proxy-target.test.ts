import { describe, expect, it } from 'vitest';
import { resolveProxyTarget } from '../src/shared/proxy-target.ts';

describe('resolveProxyTarget', () => {
  it('fills the defaults and normalizes the URLs', () => {
    expect(resolveProxyTarget({ url: 'ws://a.example:9000' }, 'proxy')).toEqual({
      urls: ['ws://a.example:9000/'],
      headers: {},
      protocols: null,
      mode: 'message',
      balance: 'least-connections',
      sticky: null,
      timeout: 10,
      deflate: false,
      tls: null,
    });
    const full = resolveProxyTarget(
      { url: ['ws://a/x?y=1', 'wss://b'], headers: { 'X-User': 'ann', 'X-None': undefined }, protocols: ['v1'], mode: 'passthrough', balance: 'round-robin', sticky: 'k', timeout: 0.5, deflate: true, tls: { rejectUnauthorized: false } },
      'proxy',
    );
    expect(full).toMatchObject({ urls: ['ws://a/x?y=1', 'wss://b/'], headers: { 'X-User': 'ann' }, protocols: ['v1'], mode: 'passthrough', balance: 'round-robin', sticky: 'k', timeout: 0.5, deflate: true });
    expect(Object.isFrozen(full)).toBe(true);
  });

  it.each([
    [{ url: [] }, /non-empty array/],
    [{ url: 'http://a' }, /not a ws:\/\/ or wss:\/\/ URL/],
    [{ url: 'not a url' }, /is not a URL/],
    [{ url: 'ws://a/#frag' }, /has a fragment/],
    [{ url: 'ws://a', mode: 'tunnel' }, /mode must be message or passthrough/],
    [{ url: 'ws://a', balance: 'random' }, /balance must be/],
    [{ url: 'ws://a', timeout: 0 }, /timeout must be/],
    [{ url: 'ws://a', timeout: 500 }, /timeout must be/],
    [{ url: 'ws://a', sticky: 5 }, /sticky must be a string/],
    [{ url: 'ws://a', protocols: ['a b'] }, /protocols:/],
    [{ url: 'ws://a', protocols: ['a', 'a'] }, /protocols:/],
    [{ url: 'ws://a', headers: { x: 1 } }, /header x must be a string/],
    [{ url: 'ws://a', headers: { 'x user': 'a' } }, /not a token/],
    [{ url: 'ws://a', headers: { 'x-user': 'a\r\nInjected: 1' } }, /Invalid character/],
    [{ url: 'ws://a', headers: { 'x-user': 'caf\u00e9\u0000' } }, /Invalid character/],
    [{ url: 'ws://a', timeout: Number.NaN }, /timeout must be/],
    [{ url: 'ws://a', deflate: 'yes' }, /deflate must be true or false/],
    [{ url: 'ws://a', protocols: 'v1' }, /protocols must be an array/],
    [null, /must be an object/],
    [{ url: 'ws://a', tls: 'insecure' }, /tls must be an object/],
  ])('refuses %j', (target, message) => {
    expect(() => resolveProxyTarget(target as never, 'the target')).toThrow(message);
  });
});
