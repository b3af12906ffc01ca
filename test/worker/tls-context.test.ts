import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { contextForName, loadTlsContext } from '../../src/worker/tls-context.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));

describe('contextForName', () => {
  const byName = new Map([
    ['chat.example', 'chat'],
    ['*.feeds.example', 'feeds'],
  ]);
  it.each([
    ['chat.example', 'chat'],
    ['Chat.Example', 'chat'],
    ['eu.feeds.example', 'feeds'],
    ['feeds.example', undefined],
    ['a.b.feeds.example', undefined],
    ['other.example', undefined],
    ['localhost', undefined],
  ])('%s gets %s', (name, expected) => {
    expect(contextForName(byName, name)).toBe(expected);
  });
});

describe('loadTlsContext', () => {
  const base = { certFile: fixture('cert.pem'), keyFile: fixture('key.pem') };

  it('asks for client certificates only when told, and refuses unverified ones unless told not to', () => {
    expect(loadTlsContext(base).socketOptions.requestCert).toBeUndefined();
    expect(loadTlsContext({ ...base, caFile: fixture('ca.pem'), requestCert: true }).socketOptions).toMatchObject({ requestCert: true, rejectUnauthorized: true });
    expect(loadTlsContext({ ...base, caFile: fixture('ca.pem'), requestCert: true, rejectUnauthorized: false }).socketOptions).toMatchObject({ requestCert: true, rejectUnauthorized: false });
  });

  it('has an SNI callback only with names, which answers the default for unknown ones', async () => {
    expect(loadTlsContext(base).socketOptions.SNICallback).toBeUndefined();
    const tls = loadTlsContext({ ...base, sni: { 'chat.example': { certFile: fixture('sni-cert.pem'), keyFile: fixture('sni-key.pem') } } });
    const ask = (name: string) => new Promise((resolve) => tls.socketOptions.SNICallback!(name, (_error, context) => resolve(context)));
    expect(await ask('chat.example')).toBeDefined();
    expect(await ask('elsewhere.example')).toBeUndefined();
  });

  it('names the file it cannot read, for the default and for an SNI name', () => {
    expect(() => loadTlsContext({ ...base, certFile: '/nonexistent/cert.pem' })).toThrow(/cannot read TLS file \/nonexistent\/cert\.pem/);
    expect(() => loadTlsContext({ ...base, sni: { 'a.example': { certFile: '/nonexistent/a.pem', keyFile: fixture('key.pem') } } })).toThrow(/\/nonexistent\/a\.pem/);
  });
});
