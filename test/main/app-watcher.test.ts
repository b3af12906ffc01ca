import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { appDirectories, watchApp } from '../../src/main/app-watcher.ts';
import { silentLogger } from '../support/worker-fakes.ts';

const stops: (() => void)[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const until = async (predicate: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!predicate()) throw new Error(`timed out waiting for ${what}`);
};

describe('appDirectories', () => {
  it('names the directory of each file module once, the demo\'s for null, none for other URLs', () => {
    expect(appDirectories(['/srv/a/app.ts', '/srv/a/other.ts', 'file:///srv/b/app.js', 'data:text/javascript,export default {}'])).toEqual(['/srv/a', '/srv/b']);
    expect(appDirectories([null])).toEqual([dirname(fileURLToPath(new URL('../../src/demo/app.ts', import.meta.url)))]);
  });
});

describe('watchApp', () => {
  it('reloads once per burst of changes, in subdirectories too, and ignores node_modules and dotfiles', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardws-watch-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'lib'));
    mkdirSync(join(dir, 'node_modules'));
    let reloads = 0;
    stops.push(watchApp([dir], async () => void reloads++, silentLogger()));
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'lib', 'util.ts'), `export const n = ${i};\n`);
    await until(() => reloads === 1, 'one reload for the burst');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(reloads).toBe(1);
    writeFileSync(join(dir, 'node_modules', 'x.js'), '1');
    writeFileSync(join(dir, '.swp'), '1');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(reloads).toBe(1);
    writeFileSync(join(dir, 'app.ts'), 'export default {};\n');
    await until(() => reloads === 2, 'the second reload');
  });

  it('keeps watching after a reload that fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardws-watch-'));
    dirs.push(dir);
    let attempts = 0;
    stops.push(watchApp([dir], async () => {
      attempts++;
      throw new Error('broken module');
    }, silentLogger()));
    writeFileSync(join(dir, 'app.ts'), 'x');
    await until(() => attempts === 1, 'the first attempt');
    await new Promise((resolve) => setTimeout(resolve, 300));
    writeFileSync(join(dir, 'app.ts'), 'y');
    await until(() => attempts === 2, 'the second attempt');
  });
});
