/**
 * ProxyGateway's own decisions, against scripted upstreams on loopback: the URL a static target
 * is dialed at, the request fields forwarded, what each mode offers, what the client is answered
 * (101 with the upstream's subprotocol, 502, 504), failing over to the next upstream with back-off,
 * and a client gone while the upstream was being dialed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Shard } from '../../src/shared/app.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { computeAcceptKey, generateKey } from '../../src/shared/handshake.ts';
import type { UpgradeRequestInfo } from '../../src/shared/handshake.ts';
import { resolveProxyTarget } from '../../src/shared/proxy-target.ts';
import type { ProxyTarget } from '../../src/shared/app.ts';
import { WorkerCounters } from '../../src/shared/worker-counters.ts';
import { ProxyGateway, upstreamUrl } from '../../src/worker/proxy-gateway.ts';
import type { ClientLeg, GatewayResult } from '../../src/worker/proxy-gateway.ts';
import { RouteTable } from '../../src/worker/route-table.ts';
import type { AcceptedUpgrade } from '../../src/worker/upgrade.ts';
import { headerOf, scriptedUpstream, switchingProtocols } from '../support/scripted-upstream.ts';
import type { ScriptedUpstream } from '../support/scripted-upstream.ts';
import { silentLogger, testContext, testShard, until } from '../support/worker-fakes.ts';

const shard: Shard = testShard({ id: 0, count: 1 });
const config = resolveConfig({}, 1);
const route = RouteTable.build([{ pattern: null, app: {}, settings: config, proxy: null }], testContext(config, shard, silentLogger(), new WorkerCounters(1).slot(0)), silentLogger()).match('/')!;

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function upstream(answer: ((head: string, key: string) => Buffer | string) | null): Promise<ScriptedUpstream> {
  const up = await scriptedUpstream(answer);
  closers.push(() => up.close());
  return up;
}

/** A closed port: connecting is refused. */
async function deadPort(): Promise<number> {
  const up = await scriptedUpstream(null);
  up.close();
  return up.port;
}

function clientLeg(options: { url?: string; headers?: Record<string, string | string[]>; protocols?: string[]; tls?: boolean; extensions?: string } = {}): ClientLeg {
  const key = generateKey();
  const info: UpgradeRequestInfo = { key, version: 13, protocols: options.protocols ?? [], extensionsHeader: options.extensions, origin: undefined, host: 'gateway.example' };
  return {
    request: {
      method: 'GET',
      url: options.url ?? '/chat?room=1',
      httpVersion: '1.1',
      headers: {
        host: 'gateway.example',
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': key,
        'sec-websocket-version': '13',
        ...(options.extensions !== undefined ? { 'sec-websocket-extensions': options.extensions } : {}),
        ...(options.protocols !== undefined ? { 'sec-websocket-protocol': options.protocols.join(', ') } : {}),
        ...options.headers,
      },
      remoteAddress: '198.51.100.7',
      tls: options.tls === true ? { servername: null, authorized: false, authorizationError: null, peerCertificate: null } : null,
      raw: () => {
        throw new Error('not read by the gateway');
      },
    },
    info,
    route,
    compression: null,
    extensions: '',
    headers: undefined,
  };
}

const live = { destroyed: false };

/** The result as an accepted upgrade, closed after the test. */
function accepted(result: GatewayResult): AcceptedUpgrade {
  if (result === null || 'refuse' in result) throw new Error(`expected an accepted upgrade, got ${JSON.stringify(result)}`);
  closers.push(() => result.abandon());
  return result;
}

const target = (t: ProxyTarget) => resolveProxyTarget(t, 'test');

describe('upstreamUrl', () => {
  it.each([
    ['ws://up:9000', '/chat?room=1', 'ws://up:9000/chat?room=1'],
    ['ws://up:9000/base', '/chat', 'ws://up:9000/base/chat'],
    ['ws://up:9000/base/', '/chat/x?y', 'ws://up:9000/base/chat/x?y'],
    ['ws://up/base?k=v', '/chat', 'ws://up/base/chat?k=v'],
    ['ws://up/base?k=v', '/chat?mine=1', 'ws://up/base/chat?mine=1'],
    ['wss://[::1]:8443/', '/', 'wss://[::1]:8443/'],
  ])('%s with %s is %s', (base, request, expected) => {
    expect(upstreamUrl(new URL(base), request)).toBe(expected);
  });
});

describe('ProxyGateway.open', () => {
  it('forwards end-to-end fields and X-Forwarded-*, drops hop-by-hop ones, and the target’s headers win', async () => {
    const up = await upstream((_h, key) => switchingProtocols(key));
    const gateway = new ProxyGateway(silentLogger());
    const client = clientLeg({
      headers: {
        'x-custom': 'kept',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        connection: 'Upgrade, X-Secret',
        'x-secret': 'hop',
        'x-forwarded-for': '203.0.113.1',
        'x-user': 'from client',
        cookie: 'a=1',
      },
    });
    accepted(await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/base`, headers: { 'X-User': 'from target' } }), client, live, null, true));
    const head = up.heads[0]!;
    expect(head.split('\r\n')[0]).toBe('GET /base/chat?room=1 HTTP/1.1');
    expect(headerOf(head, 'x-custom')).toBe('kept');
    expect(headerOf(head, 'cookie')).toBe('a=1');
    expect(headerOf(head, 'keep-alive')).toBeUndefined();
    expect(headerOf(head, 'te')).toBeUndefined();
    expect(headerOf(head, 'x-secret')).toBeUndefined();
    expect(headerOf(head, 'connection')).toBe('Upgrade');
    expect(headerOf(head, 'host')).toBe(`127.0.0.1:${up.port}`);
    expect(headerOf(head, 'x-forwarded-for')).toBe('203.0.113.1, 198.51.100.7');
    expect(headerOf(head, 'x-forwarded-proto')).toBe('http');
    expect(headerOf(head, 'x-forwarded-host')).toBe('gateway.example');
    expect(headerOf(head, 'x-user')).toBe('from target');
    // Message mode: a key of its own, no extensions offered (the target has no deflate).
    expect(headerOf(head, 'sec-websocket-key')).not.toBe(client.info.key);
    expect(headerOf(head, 'sec-websocket-extensions')).toBeUndefined();
  });

  it("dials an app's URL as given (no path forwarding), says https behind TLS, and offers deflate when the target asks", async () => {
    const up = await upstream((_h, key) => switchingProtocols(key));
    const gateway = new ProxyGateway(silentLogger());
    accepted(await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/fixed?x=1`, deflate: true }), clientLeg({ tls: true, extensions: 'permessage-deflate' }), live, null, false));
    const head = up.heads[0]!;
    expect(head.split('\r\n')[0]).toBe('GET /fixed?x=1 HTTP/1.1');
    expect(headerOf(head, 'x-forwarded-proto')).toBe('https');
    const offer = headerOf(head, 'sec-websocket-extensions')!.split(/\s*;\s*/);
    expect(offer[0]).toBe('permessage-deflate');
    expect(offer.slice(1).sort()).toEqual(['client_max_window_bits', 'client_no_context_takeover']);
  });

  it("answers the client's key with the subprotocol the upstream chose, from the client's offers", async () => {
    const up = await upstream((_h, key) => switchingProtocols(key, 'Sec-WebSocket-Protocol: v2\r\n'));
    const gateway = new ProxyGateway(silentLogger());
    const client = clientLeg({ protocols: ['v1', 'v2'] });
    const result = accepted(await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/` }), client, live, null, true));
    expect(headerOf(up.heads[0]!, 'sec-websocket-protocol')).toBe('v1, v2');
    expect(result.kind).toBe('connection');
    if (result.kind !== 'connection') return;
    expect(result.protocol).toBe('v2');
    // An HTTP/1.1 client leg: the answer is a 101 head (an HTTP/2 one would be :status 200 fields).
    expect(result.response.http2).toBe(false);
    const head = result.response.http2 ? '' : result.response.head;
    expect(head).toContain(`Sec-WebSocket-Accept: ${computeAcceptKey(client.info.key)}`);
    expect(head).toMatch(/Sec-WebSocket-Protocol: v2/i);
    expect(gateway.upstreams).toEqual([{ url: `ws://127.0.0.1:${up.port}/`, active: 1, failures: 0, backingOff: false }]);
    result.abandon();
    // Nothing open and nothing failed: the pool keeps no entry for it.
    expect(gateway.upstreams).toEqual([]);
  });

  it.each([
    ['chooses a subprotocol the client did not offer', (key: string) => switchingProtocols(key, 'Sec-WebSocket-Protocol: admin\r\n'), /did not offer/],
    ['answers with extensions that were not offered', (key: string) => switchingProtocols(key, 'Sec-WebSocket-Extensions: permessage-deflate\r\n'), /not offered/],
    ['refuses the upgrade', () => 'HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n', /401/],
  ])('gives 502, never a 101, when the upstream %s', async (_name, answer, reason) => {
    const up = await upstream((_h, key) => answer(key));
    const gateway = new ProxyGateway(silentLogger());
    // The target offers its own subprotocol list, which the client's offers do not include.
    const result = await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/`, protocols: ['admin'] }), clientLeg({ protocols: ['user'] }), live, null, true);
    expect(result).toMatchObject({ refuse: 502 });
    expect(result !== null && 'refuse' in result && result.reason).toMatch(reason);
    // It answered: no back-off, and nothing stays counted.
    expect(gateway.upstreams.every((s) => s.active === 0 && !s.backingOff)).toBe(true);
  });

  it('gives 504 when the upstream does not answer in time', async () => {
    const up = await upstream(null);
    const gateway = new ProxyGateway(silentLogger());
    const result = await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/`, timeout: 0.2 }), clientLeg(), live, null, true);
    expect(result).toMatchObject({ refuse: 504 });
  });

  it('tries the next upstream when one cannot be reached, and the dead one backs off', async () => {
    const dead = await deadPort();
    const up = await upstream((_h, key) => switchingProtocols(key));
    const gateway = new ProxyGateway(silentLogger());
    const both = target({ url: [`ws://127.0.0.1:${dead}/`, `ws://127.0.0.1:${up.port}/`], balance: 'round-robin' });
    accepted(await gateway.open(both, clientLeg(), live, null, true));
    accepted(await gateway.open(both, clientLeg(), live, null, true));
    expect(up.heads).toHaveLength(2);
    const stats = new Map(gateway.upstreams.map((s) => [s.url, s]));
    expect(stats.get(`ws://127.0.0.1:${dead}/`)).toMatchObject({ failures: 1, backingOff: true, active: 0 });
    expect(stats.get(`ws://127.0.0.1:${up.port}/`)).toMatchObject({ active: 2 });
  });

  it('gives 502 when every upstream is unreachable', async () => {
    const gateway = new ProxyGateway(silentLogger());
    const result = await gateway.open(target({ url: [`ws://127.0.0.1:${await deadPort()}/`, `ws://127.0.0.1:${await deadPort()}/`] }), clientLeg(), live, null, true);
    expect(result).toMatchObject({ refuse: 502 });
    expect(gateway.upstreams.map((s) => s.failures)).toEqual([1, 1]);
  });

  it('a client gone while dialing: nothing is accepted and the upstream connection is closed', async () => {
    const up = await upstream((_h, key) => switchingProtocols(key));
    const gateway = new ProxyGateway(silentLogger());
    const result = await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/` }), clientLeg(), { destroyed: true }, null, true);
    expect(result).toBeNull();
    expect(up.heads).toHaveLength(1);
    await until(() => up.closedConnections() === 1, 'the upstream connection to close');
    expect(gateway.upstreams.every((s) => s.active === 0)).toBe(true);
  });

  it("passthrough forwards the client's key and offers, and relays the upstream's 101 as it came", async () => {
    const up = await upstream((_h, key) => switchingProtocols(key, 'Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\nX-Upstream: yes\r\n'));
    const gateway = new ProxyGateway(silentLogger());
    const client = clientLeg({ extensions: 'permessage-deflate; client_max_window_bits', protocols: ['p'] });
    const result = accepted(await gateway.open(target({ url: `ws://127.0.0.1:${up.port}/`, mode: 'passthrough' }), client, live, null, true));
    const head = up.heads[0]!;
    expect(headerOf(head, 'sec-websocket-key')).toBe(client.info.key);
    expect(headerOf(head, 'sec-websocket-extensions')).toBe('permessage-deflate; client_max_window_bits');
    expect(result.kind).toBe('splice');
    if (result.kind !== 'splice') return;
    expect(result.response.startsWith('HTTP/1.1 101 Switching Protocols\r\n')).toBe(true);
    expect(result.response).toContain(`Sec-WebSocket-Accept: ${computeAcceptKey(client.info.key)}`);
    expect(result.response).toContain('Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover');
    expect(result.response).toContain('X-Upstream: yes');
    expect(result.response.endsWith('\r\n\r\n')).toBe(true);
  });
});
