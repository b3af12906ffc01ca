import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
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
 * Imports the app module named in the config, once per worker thread (each worker has its own
 * module instance and state). Its default export is the app (`export default defineApp({...})`).
 */
export async function loadApp(spec: string | null): Promise<App<unknown>> {
  const url = appUrl(spec);
  const module = (await import(url)) as { default?: App<unknown> };
  if (typeof module.default !== 'object' || module.default === null) {
    throw new TypeError(`app module ${url} has no default export (export default defineApp({...}))`);
  }
  return module.default;
}
