/**
 * Which app (or proxy) a request goes to, by its path: the routes of `listen({ routes })`, the
 * most specific matching pattern first (an exact path, then the longest wildcard stem), then the server's own `app` (or `proxy`). Each route has its
 * own ConnectionContext, so its limits, compression and slow-client policy are its own without
 * any check on the message path; a second context per route carries its proxied connections.
 */
import type { Logger } from 'pino';
import type { App } from '../shared/app.ts';
import type { RouteSettings, ServerConfig } from '../shared/config.ts';
import type { ResolvedProxyTarget } from '../shared/proxy-target.ts';
import { loadApp } from './app-loader.ts';
import type { ConnectionContext } from './connection.ts';
import { ProxyLink } from './proxy-link.ts';
import { slowClientPolicy } from './send-admission.ts';

export interface Route {
  /** Its pattern (`/chat`, `/chat/*`), or null for the server's own app. */
  readonly pattern: string | null;
  /** Replaced by a reload (`switchApps`), with its context's. */
  app: App<unknown>;
  readonly settings: RouteSettings;
  /** The module `app` came from (null: the demo); undefined on a proxy route. */
  readonly module?: string | null;
  /** Set on a proxy route: every upgrade goes there, without an app. */
  readonly proxy: ResolvedProxyTarget | null;
  readonly context: ConnectionContext;
  /** The context of the route's proxied connections (message mode). */
  readonly relay: ConnectionContext;
}

/** A route before its contexts are made: `app` null on a proxy route. */
export interface RouteSpec {
  readonly pattern: string | null;
  readonly app: App<unknown> | null;
  readonly module?: string | null;
  readonly settings: RouteSettings;
  readonly proxy: ResolvedProxyTarget | null;
}

/** An app with no handlers: a proxy route's (its upgrades never reach an app). */
const NO_APP: App<unknown> = Object.freeze({});

export class RouteTable {
  /** Most specific pattern first (see specificity). */
  readonly #routes: readonly Route[];
  readonly #fallback: Route | null;

  private constructor(routes: readonly Route[], fallback: Route | null) {
    this.#routes = [...routes].sort((a, b) => specificity(b.pattern!) - specificity(a.pattern!));
    this.#fallback = fallback;
  }

  /** Loads every route's app module (each worker has its own instances) and builds their contexts. */
  static async load(config: ServerConfig, base: ConnectionContext, logger: Logger): Promise<RouteTable> {
    const specs: RouteSpec[] = [];
    for (const route of config.routes) {
      if (route.proxy === null) specs.push({ pattern: route.pattern, app: await loadApp(route.app), module: route.app, settings: route, proxy: null });
      else specs.push({ pattern: route.pattern, app: NO_APP, settings: route, proxy: route.proxy });
    }
    if (config.app !== null || (config.proxy === null && config.routes.length === 0)) specs.push({ pattern: null, app: await loadApp(config.app), module: config.app, settings: config, proxy: null });
    else if (config.proxy !== null) specs.push({ pattern: null, app: NO_APP, settings: config, proxy: config.proxy });
    return RouteTable.build(specs, base, logger);
  }

  /** A table of apps already loaded; the spec without a pattern (at most one) takes what no pattern does. */
  static build(specs: readonly RouteSpec[], base: ConnectionContext, logger: Logger): RouteTable {
    const routes = specs.map(({ pattern, app, module, settings, proxy }): Route => {
      const context = contextFor(base, app ?? NO_APP, settings, logger);
      // The relay has no app to answer pings when autoPong is off: each leg answers its own.
      return { pattern, app: app ?? NO_APP, ...(module === undefined ? {} : { module }), settings, proxy, context, relay: { ...context, app: ProxyLink.app, autoPong: true } };
    });
    return new RouteTable(
      routes.filter((route) => route.pattern !== null),
      routes.find((route) => route.pattern === null) ?? null,
    );
  }

  /** The route for a request target (its path; the query is ignored), or null: 404. */
  match(url: string): Route | null {
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    for (const route of this.#routes) if (patternMatches(route.pattern!, path)) return route;
    return this.#fallback;
  }

  /**
   * Reload number `reload`: a new instance of every route's app module (one per module, as at
   * start), nothing switched yet. Rejects, changing nothing, when one fails to load.
   */
  async loadNewApps(reload: number): Promise<Map<Route, App<unknown>>> {
    const byModule = new Map<string | null, App<unknown>>();
    const next = new Map<Route, App<unknown>>();
    for (const route of this.#all) {
      if (route.module === undefined) continue;
      let app = byModule.get(route.module);
      if (app === undefined) byModule.set(route.module, (app = await loadApp(route.module, reload)));
      next.set(route, app);
    }
    return next;
  }

  /** Switches routes to the apps `loadNewApps` gave, for new connections and open ones alike. */
  switchApps(next: ReadonlyMap<Route, App<unknown>>, logger: Logger): void {
    for (const [route, app] of next) {
      route.app = app;
      route.context.app = app;
      route.context.slowClient = slowClientPolicy(route.settings.slowClient, app, logger);
    }
  }

  get #all(): Route[] {
    return this.#fallback === null ? [...this.#routes] : [...this.#routes, this.#fallback];
  }

  /** Every distinct app, for `start` and `stop`. */
  get apps(): readonly App<unknown>[] {
    const apps = new Set<App<unknown>>();
    for (const route of this.#routes) apps.add(route.app);
    if (this.#fallback !== null) apps.add(this.#fallback.app);
    apps.delete(NO_APP);
    return [...apps];
  }
}

/**
 * How specific a pattern is: its literal part's length, an exact path before a wildcard with the
 * same stem. Sorted by the pattern's own length, `/chat/*` came before `/chat` (and before
 * `/chat/x`, on a tie), so the exact route never got its own path.
 */
function specificity(pattern: string): number {
  return pattern.endsWith('/*') ? 2 * (pattern.length - 2) : 2 * pattern.length + 1;
}

/** `/chat` matches only `/chat`; `/chat/*` matches `/chat` and everything under `/chat/`. */
export function patternMatches(pattern: string, path: string): boolean {
  if (!pattern.endsWith('/*')) return path === pattern;
  const base = pattern.slice(0, -2);
  return path === base || (path.startsWith(base) && path.charCodeAt(base.length) === 0x2f);
}

function contextFor(base: ConnectionContext, app: App<unknown>, settings: RouteSettings, logger: Logger): ConnectionContext {
  return {
    ...base,
    app,
    maxPayloadLength: settings.maxPayloadLength,
    limits: { highWaterMark: settings.highWaterMark, maxBackpressure: settings.maxBackpressure },
    lowWaterMark: settings.lowWaterMark,
    slowClient: slowClientPolicy(settings.slowClient, app, logger),
  };
}
