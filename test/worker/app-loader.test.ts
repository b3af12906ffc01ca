import { describe, it, expect } from 'vitest';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AppLoadError, appUrl, assertAppExists, errorLocation, loadApp } from '../../src/worker/app-loader.ts';


const FIXTURE = fileURLToPath(new URL('../fixtures/apps/shard-echo.ts', import.meta.url));

describe('appUrl', () => {
  it('names the built-in demo for null', () => {
    expect(appUrl(null)).toBe(new URL('../../src/demo/app.ts', import.meta.url).href);
  });

  it('resolves a relative path from the working directory', () => {
    expect(appUrl('apps/chat.ts')).toBe(pathToFileURL(resolve(process.cwd(), 'apps/chat.ts')).href);
    expect(appUrl('./chat.ts')).toBe(pathToFileURL(resolve(process.cwd(), 'chat.ts')).href);
  });

  it('turns an absolute path into a file: URL, escaping what a URL must', () => {
    expect(appUrl('/srv/apps/chat.ts')).toBe('file:///srv/apps/chat.ts');
    expect(appUrl('/srv/my apps/#1.ts')).toBe('file:///srv/my%20apps/%231.ts');
  });

  it('keeps a URL as it is', () => {
    expect(appUrl('file:///srv/apps/chat.ts')).toBe('file:///srv/apps/chat.ts');
    expect(appUrl('data:text/javascript,export default {}')).toBe('data:text/javascript,export default {}');
  });

  it('takes a Windows drive letter for a path, not a URL scheme', () => {
    for (const spec of ['C:\\apps\\chat.ts', 'c:/apps/chat.ts']) {
      const url = appUrl(spec);
      expect(url).not.toBe(spec);
      expect(url.startsWith('file:')).toBe(true);
      expect(url).toBe(pathToFileURL(resolve(process.cwd(), spec)).href);
    }
  });
});

describe('loadApp', () => {
  it('returns the default export of the module, by path or by URL (one module instance)', async () => {
    const app = await loadApp(FIXTURE);
    expect(typeof app.open).toBe('function');
    expect(typeof app.message).toBe('function');
    expect(await loadApp(pathToFileURL(FIXTURE).href)).toBe(app);
  });

  it('loads the demo for null', async () => {
    const app = await loadApp(null);
    expect(typeof app.upgrade).toBe('function');
  });

  const failure = (spec: string): Promise<AppLoadError> =>
    loadApp(spec).then(
      () => {
        throw new Error(`${spec} loaded`);
      },
      (e: unknown) => e as AppLoadError,
    );

  it('refuses a module without a default export with an AppLoadError naming its file', async () => {
    const spec = fileURLToPath(new URL('../support/worker-fakes.ts', import.meta.url));
    const error = await failure(spec);
    expect(error).toBeInstanceOf(AppLoadError);
    expect(error.code).toBe('SHARDWS_APP_LOAD');
    expect(error.message).toBe(`app module ${relative(process.cwd(), spec)} has no default export (export default defineApp({...}))`);
  });

  it('rejects with the import error for a module that does not exist, without a location (the message names it)', async () => {
    const error = await failure('/nonexistent/shardws-app.ts');
    expect(error).toBeInstanceOf(AppLoadError);
    expect(error.location).toBeNull();
    expect(error.message).toMatch(/^Error: Cannot find module '.*\/nonexistent\/shardws-app\.ts'$/);
  });
  // What Node's own loader says for a syntax error, a throw at load and an enum is tested with
  // the real binary in test/cli.test.ts: under vitest, modules go through vite's transform.
});

describe('errorLocation', () => {
  it('skips frames in node: internals, node_modules and shardws itself', () => {
    const error = new Error('x');
    error.stack = [
      'Error: x',
      '    at check (node:internal/modules/esm/resolve:241:11)',
      `    at loadApp (${pathToFileURL(fileURLToPath(new URL('../../src/worker/app-loader.ts', import.meta.url))).href}:70:5)`,
      '    at helper (/srv/app/node_modules/lib/index.js:3:1)',
      '    at file:///srv/app/config.ts:12:9',
    ].join('\n');
    expect(errorLocation(error)).toBe('/srv/app/config.ts:12');
    expect(errorLocation('not an error')).toBeNull();
  });

  it("takes a SyntaxError's file:line from the first line of its stack", () => {
    const error = new SyntaxError("Expected ',', got '}'");
    error.stack = "/srv/app/app.ts:4\n    ws.send(d\n  }\n  ^\n\nSyntaxError [ERR_INVALID_TYPESCRIPT_SYNTAX]: Expected ',', got '}'\n    at parseTypeScript (node:internal/modules/typescript:61:36)";
    expect(errorLocation(error)).toBe('/srv/app/app.ts:4');
    error.stack = 'file:///srv/app/app.js:7\nfoo bar\n    ^^^\n\nSyntaxError: Unexpected identifier';
    expect(errorLocation(error)).toBe('/srv/app/app.js:7');
  });

  it('names a file under the working directory by its relative path', () => {
    const error = new Error('x');
    error.stack = `Error: x\n    at ${pathToFileURL(join(process.cwd(), 'apps', 'chat.ts')).href}:3:1`;
    expect(errorLocation(error)).toBe(join('apps', 'chat.ts:3'));
  });
});

describe('assertAppExists', () => {
  it('passes the demo, an existing file and non-file URLs', () => {
    expect(() => assertAppExists(null)).not.toThrow();
    expect(() => assertAppExists(FIXTURE)).not.toThrow();
    expect(() => assertAppExists('data:text/javascript,export default {}')).not.toThrow();
  });

  it('throws a TypeError naming the missing file, and what was typed when it differs', () => {
    expect(() => assertAppExists('/nonexistent/app.ts')).toThrow(new TypeError('app not found: /nonexistent/app.ts'));
    expect(() => assertAppExists('file:///nonexistent/app.ts')).toThrow(new TypeError('app not found: /nonexistent/app.ts (from "file:///nonexistent/app.ts")'));
    expect(() => assertAppExists('./no-such-app.ts')).toThrow(new TypeError('app not found: no-such-app.ts (from "./no-such-app.ts")'));
  });
});
