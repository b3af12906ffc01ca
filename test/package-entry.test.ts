/**
 * The package boundary: importing `shardws` loads the server and nothing optional (no broker
 * client, no load generator, no metrics library until a scrape). Checked in a fresh Node
 * process whose module hooks record every module it resolves and loads, ESM and CommonJS alike.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../', import.meta.url);

/**
 * Preloaded with --import: synchronous hooks (node:module registerHooks) see import() and
 * require() alike, including the require() calls inside CommonJS packages; at exit the child
 * prints every URL between two markers.
 */
const RECORDER = `
import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
const seen = new Set();
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    seen.add(result.url);
    return result;
  },
  load(url, context, nextLoad) {
    seen.add(url);
    return nextLoad(url, context);
  },
});
process.on('exit', () => writeSync(1, '\\n<<modules>>' + JSON.stringify([...seen]) + '<</modules>>\\n'));
`;

/** Every module URL a fresh process loads while it imports `entries` (paths from the repository root). */
function modulesLoadedBy(...entries: string[]): string[] {
  const imports = entries.map((entry) => `await import(${JSON.stringify(new URL(entry, ROOT).href)});`).join('\n');
  const child = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(RECORDER)}`, '--input-type=module', '--eval', imports],
    { cwd: new URL('.', ROOT), encoding: 'utf8', timeout: 20_000 },
  );
  expect(child.status, child.stderr).toBe(0);
  const match = /<<modules>>(.*)<<\/modules>>/.exec(child.stdout);
  expect(match, child.stdout).not.toBeNull();
  return JSON.parse(match![1]!) as string[];
}

const url = (path: string): string => new URL(path, ROOT).href;
const fromPackage = (name: string) => (loaded: string): boolean => loaded.includes(`/node_modules/${name}/`);

describe('package entry', () => {
  it('runs the check on a Node that has synchronous module hooks', () => {
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    expect(major > 23 || (major === 23 && minor >= 5), `Node ${process.versions.node}`).toBe(true);
  });

  it('loads the server and nothing optional: no ioredis, piscina, prom-client, bench/ or redis bridge', () => {
    const loaded = modulesLoadedBy('src/index.ts');
    expect(loaded).toContain(url('src/index.ts'));
    expect(loaded).toContain(url('src/main/listen.ts'));
    // The recorder sees packages too (pino is CommonJS, required from within itself).
    expect(loaded.some(fromPackage('pino'))).toBe(true);
    expect(loaded.some(fromPackage('sonic-boom'))).toBe(true);

    expect(loaded.filter(fromPackage('ioredis'))).toEqual([]);
    expect(loaded.filter(fromPackage('piscina'))).toEqual([]);
    expect(loaded.filter(fromPackage('prom-client'))).toEqual([]);
    expect(loaded.filter((m) => m.startsWith(url('bench/')))).toEqual([]);
    expect(loaded).not.toContain(url('src/main/redis-bridge.ts'));
    expect(loaded).not.toContain(url('src/worker/metrics.ts'));
  });

  it('would notice: the same check sees ioredis (CommonJS, and its own requires) once shardws/redis is imported', () => {
    const loaded = modulesLoadedBy('src/index.ts', 'src/redis.ts');
    expect(loaded).toContain(url('src/main/redis-bridge.ts'));
    expect(loaded).toContain(url('node_modules/ioredis/built/index.js'));
    // A module ioredis requires from inside itself: the CommonJS loader's requires are seen too.
    expect(loaded).toContain(url('node_modules/ioredis/built/Redis.js'));
    expect(loaded.some(fromPackage('denque'))).toBe(true);
  });

  it('would notice piscina and prom-client too', () => {
    // Both are CommonJS, loaded with require() from a module created with createRequire.
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        `data:text/javascript,${encodeURIComponent(RECORDER)}`,
        '--input-type=module',
        '--eval',
        `import { createRequire } from 'node:module'; const require = createRequire(${JSON.stringify(url('package.json'))}); require('piscina'); require('prom-client');`,
      ],
      { cwd: new URL('.', ROOT), encoding: 'utf8', timeout: 20_000 },
    );
    expect(child.status, child.stderr).toBe(0);
    const loaded = JSON.parse(/<<modules>>(.*)<<\/modules>>/.exec(child.stdout)![1]!) as string[];
    expect(loaded.some(fromPackage('piscina'))).toBe(true);
    expect(loaded.some(fromPackage('prom-client'))).toBe(true);
  });
});

describe('package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as {
    exports: Record<string, unknown>;
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };

  it("exports '.', './client' and './redis'", () => {
    expect(Object.keys(pkg.exports)).toEqual(expect.arrayContaining(['.', './client', './redis']));
    expect(pkg.exports['.']).toMatchObject({ default: './dist/src/index.js' });
    expect(pkg.exports['./client']).toMatchObject({ default: './dist/src/client/websocket.js' });
    expect(pkg.exports['./redis']).toMatchObject({ default: './dist/src/redis.js' });
  });

  it('makes piscina an optional peer, not a dependency', () => {
    expect(pkg.peerDependencies).toHaveProperty('piscina');
    expect(pkg.peerDependenciesMeta?.piscina?.optional).toBe(true);
    expect(pkg.dependencies ?? {}).not.toHaveProperty('piscina');
  });
});
