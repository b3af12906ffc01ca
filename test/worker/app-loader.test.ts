import { describe, it, expect } from 'vitest';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { appUrl, loadApp } from '../../src/worker/app-loader.ts';

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

  it('refuses a module without a default export with a TypeError naming its URL', async () => {
    const spec = fileURLToPath(new URL('../support/worker-fakes.ts', import.meta.url));
    const url = pathToFileURL(spec).href;
    const error = await loadApp(spec).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toContain(url);
    expect((error as TypeError).message).toContain('no default export');
  });

  it('rejects with the import error for a module that does not exist', async () => {
    await expect(loadApp('/nonexistent/shardws-app.ts')).rejects.toThrow();
  });
});
