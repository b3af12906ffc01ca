import { describe, expect, it } from 'vitest';
import type { App, Shard } from '../../src/shared/app.ts';
import { resolveConfig } from '../../src/shared/config.ts';
import { WorkerCounters } from '../../src/shared/worker-counters.ts';
import { ProxyLink } from '../../src/worker/proxy-link.ts';
import { RouteTable, patternMatches } from '../../src/worker/route-table.ts';
import { silentLogger, testContext, testShard } from '../support/worker-fakes.ts';

const shard: Shard = testShard({ id: 0, count: 1 });

describe('patternMatches', () => {
  it.each([
    ['/chat', '/chat', true],
    ['/chat', '/chat/', false],
    ['/chat', '/chatroom', false],
    ['/chat/*', '/chat', true],
    ['/chat/*', '/chat/', true],
    ['/chat/*', '/chat/a/b', true],
    ['/chat/*', '/chatroom', false],
    ['/*', '/anything', true],
  ])('%s against %s: %s', (pattern, path, expected) => {
    expect(patternMatches(pattern, path)).toBe(expected);
  });
});

describe('RouteTable', () => {
  const config = resolveConfig({ maxPayloadLength: 1000, routes: { '/a': { app: 'a.ts', maxPayloadLength: 10, slowClient: 'drop' }, '/a/b/*': { proxy: { url: 'ws://up' } } } }, 1);
  const base = testContext(config, shard, silentLogger(), new WorkerCounters(1).slot(0));
  const appA: App<unknown> = { message() {} };
  const fallback: App<unknown> = { open() {} };
  const table = RouteTable.build(
    [
      { pattern: '/a', app: appA, settings: config.routes[0]!, proxy: null },
      { pattern: '/a/b/*', app: null, settings: config.routes[1]!, proxy: config.routes[1]!.proxy },
      { pattern: null, app: fallback, settings: config, proxy: null },
    ],
    base,
    silentLogger(),
  );

  it('takes the longest pattern that matches, ignoring the query, else the fallback', () => {
    expect(table.match('/a?x=1')!.app).toBe(appA);
    expect(table.match('/a/b/c')!.proxy!.urls).toEqual(['ws://up/']);
    expect(table.match('/a/b')!.proxy).not.toBeNull();
    expect(table.match('/elsewhere')!.app).toBe(fallback);
  });

  it("gives each route a context with its own app and limits, and a relay context for its proxied connections", () => {
    const route = table.match('/a')!;
    expect(route.context.app).toBe(appA);
    expect(route.context.maxPayloadLength).toBe(10);
    expect(route.relay.app).toBe(ProxyLink.app);
    expect(route.relay.maxPayloadLength).toBe(10);
    expect(table.match('/x')!.context.maxPayloadLength).toBe(1000);
    expect(route.context.arena).toBe(base.arena);
    expect(table.apps).toEqual([appA, fallback]);
  });

  it('an exact path wins over a wildcard whose stem it is or extends, whatever the order given', () => {
    const appB: App<unknown> = { close() {} };
    const appC: App<unknown> = { drain() {} };
    const spec = (pattern: string, app: App<unknown>) => ({ pattern, app, settings: config, proxy: null });
    for (const order of [0, 1]) {
      const specs = [spec('/chat/*', appA), spec('/chat', appB), spec('/chat/x', appC), spec('/chat/', fallback)];
      const routes = RouteTable.build(order === 0 ? specs : [...specs].reverse(), base, silentLogger());
      expect(routes.match('/chat')!.app).toBe(appB);
      expect(routes.match('/chat/x')!.app).toBe(appC);
      expect(routes.match('/chat/')!.app).toBe(fallback);
      expect(routes.match('/chat/y')!.app).toBe(appA);
      expect(routes.match('/chat/x/y')!.app).toBe(appA);
    }
    const nested = RouteTable.build([spec('/a/*', appA), spec('/a/b/*', appB)], base, silentLogger());
    expect(nested.match('/a/b')!.app).toBe(appB);
    expect(nested.match('/a/bc')!.app).toBe(appA);
  });

  it('without a fallback, an unmatched path has no route (404)', () => {
    const only = RouteTable.build([{ pattern: '/a', app: appA, settings: config, proxy: null }], base, silentLogger());
    expect(only.match('/b')).toBeNull();
  });
});
