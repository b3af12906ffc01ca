import { existsSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { App } from '../shared/app.ts';

/** The built-in demo, next to this file's build (src/*.ts under type stripping, or dist/). */
const DEMO_APP = new URL(`../demo/app${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;

/** The URL an app spec names: a URL as is, a path from the working directory, null the demo. */
export function appUrl(spec: string | null): string {
  if (spec === null) return DEMO_APP;
  // A scheme (file:, data:) is a URL; a Windows drive letter is not.
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec)) return spec;
  return pathToFileURL(isAbsolute(spec) ? spec : resolve(process.cwd(), spec)).href;
}

/**
 * Checks, in the primary and before any worker starts, that a file app exists: one clear error
 * instead of one import failure per worker. Other URLs (data:) are left to the import.
 */
export function assertAppExists(spec: string | null): void {
  const url = appUrl(spec);
  if (!url.startsWith('file:')) return;
  const path = fileURLToPath(url);
  const short = shortPath(path);
  if (!existsSync(path)) throw new TypeError(`app not found: ${short}${spec !== null && spec !== short && spec !== path ? ` (from "${spec}")` : ''}`);
}

/** A path relative to the working directory when it is under it (what a person typed), else absolute. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/**
 * The app module failed to load (syntax error, a throw at its top level, a missing import, no
 * default export). `location` is the `file:line` in the user's code the failure points at,
 * when the error says; the message starts with it, as a compiler's would.
 */
export class AppLoadError extends Error {
  readonly code = 'SHARDWS_APP_LOAD';
  readonly location: string | null;

  constructor(message: string, location: string | null, cause: unknown) {
    super(location === null ? message : `${location}: ${message}`, { cause });
    this.name = 'AppLoadError';
    this.location = location;
  }
}

/** This package's own sources: a stack frame there is not where the user's code failed. */
const OWN_SOURCES = fileURLToPath(new URL('..', import.meta.url));

/** `file:line` of the user's code an import error points at, from its stack. */
export function errorLocation(error: unknown): string | null {
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : '';
  const lines = stack.split('\n');
  const asPath = (file: string): string => shortPath(file.startsWith('file:') ? fileURLToPath(file) : file);
  // A SyntaxError (V8's, or type stripping's) starts its stack with "file:line" and the source line.
  const head = /^((?:file:\/\/)?\/[^:]+|[a-zA-Z]:\\[^:]+):(\d+)$/.exec(lines[0] ?? '');
  if (head !== null) return `${asPath(head[1]!)}:${head[2]}`;
  for (const line of lines) {
    const frame = /at (?:.*\()?((?:file:\/\/)?\/[^:()]+|[a-zA-Z]:\\[^:()]+):(\d+):\d+\)?$/.exec(line.trim());
    if (frame === null) continue;
    const file = frame[1]!.startsWith('file:') ? fileURLToPath(frame[1]!) : frame[1]!;
    if (!file.startsWith(OWN_SOURCES) && !file.includes('/node_modules/')) return `${asPath(file)}:${frame[2]}`;
  }
  return null;
}

/** What Node's type stripping cannot run, and what to do instead. */
const STRIPPING_HINT = ' (Node runs TypeScript by stripping types: enum, namespace and parameter properties need a build; compile with tsc and serve the .js)';

/** The query that makes a reload's imports new module instances (Node caches modules by URL). */
const RELOAD_PARAM = 'shardws-reload';
let reloadHooks = false;

/**
 * From the first reload on, a module imported by a reloaded module is reloaded with it (the same
 * query on its URL), unless it is a package's (node_modules) or shardws's own: the app's whole
 * tree of files is read afresh, libraries stay loaded once.
 */
function installReloadHooks(): void {
  if (reloadHooks) return;
  reloadHooks = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      const parent = context.parentURL === undefined ? null : URL.parse(context.parentURL);
      const version = parent?.searchParams.get(RELOAD_PARAM);
      if (version == null || !resolved.url.startsWith('file:') || resolved.url.includes('/node_modules/')) return resolved;
      const url = new URL(resolved.url);
      if (fileURLToPath(url).startsWith(OWN_SOURCES) || url.searchParams.has(RELOAD_PARAM)) return resolved;
      url.searchParams.set(RELOAD_PARAM, version);
      return { ...resolved, url: url.href };
    },
  });
}

/** The URL of reload number `reload` of an app: a file URL with the reload's query, so Node imports it anew. */
export function reloadUrl(spec: string | null, reload: number): string {
  const url = appUrl(spec);
  if (reload === 0 || !url.startsWith('file:')) return url;
  const versioned = new URL(url);
  versioned.searchParams.set(RELOAD_PARAM, String(reload));
  return versioned.href;
}

/**
 * Imports the app module named in the config, once per worker thread (each worker has its own
 * module instance and state). Its default export is the app (`export default defineApp({...})`).
 * `reload` > 0 imports a new instance of it and of the files it imports (`server.reload()`).
 */
export async function loadApp(spec: string | null, reload = 0): Promise<App<unknown>> {
  if (reload > 0) installReloadHooks();
  const url = reloadUrl(spec, reload);
  let module: { default?: App<unknown> };
  try {
    module = (await import(url)) as { default?: App<unknown> };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const kind = e.name === undefined ? '' : `${e.name}: `;
    const hint = e.code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' ? STRIPPING_HINT : '';
    // A missing module names itself and its importer in the message: no location needed.
    const location = e.code === 'ERR_MODULE_NOT_FOUND' ? null : errorLocation(error);
    // "imported from …/app-loader.ts" names shardws, not the user's code: left out.
    const message = (e.message ?? String(error)).replace(` imported from ${fileURLToPath(import.meta.url)}`, '');
    throw new AppLoadError(`${kind}${message}${hint}`, location, error);
  }
  if (typeof module.default !== 'object' || module.default === null) {
    const file = url.startsWith('file:') ? shortPath(fileURLToPath(appUrl(spec))) : url;
    throw new AppLoadError(`app module ${file} has no default export (export default defineApp({...}))`, null, undefined);
  }
  return module.default;
}
