/**
 * Runs the end-to-end suite on Node 24 as well, so the SO_REUSEPORT fallback (Node < 26.6
 * cannot transfer sockets to worker threads) keeps working. Node 24 comes from the npm package
 * `node@24`, installed once into the ignored `.node24/`. Extra arguments go to vitest.
 *
 *   node scripts/test-on-node.ts [vitest args]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAJOR = 24;
const root = fileURLToPath(new URL('..', import.meta.url));
const prefix = join(root, `.node${MAJOR}`);
const binary = join(prefix, 'node_modules', 'node', 'bin', 'node');

/** The version `binary` prints, or null when it is missing or does not run. */
function installedVersion(): string | null {
  if (!existsSync(binary)) return null;
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

const wanted = (version: string | null): boolean => version?.startsWith(`v${MAJOR}.`) ?? false;

if (process.platform !== 'linux') {
  // Node < 26.6 runs shardws only through SO_REUSEPORT, which only Linux spreads over listeners.
  console.log(`test-on-node: skipped on ${process.platform} (the Node ${MAJOR} fallback is Linux-only)`);
  process.exit(0);
}

if (!wanted(installedVersion())) {
  console.log(`test-on-node: installing Node ${MAJOR} into ${prefix}`);
  mkdirSync(prefix, { recursive: true });
  // The `node` package fetches its platform binary in a preinstall script: allow it here, since
  // this prefix is a project of its own and the repository's allowScripts does not reach it.
  writeFileSync(join(prefix, 'package.json'), `${JSON.stringify({ private: true, allowScripts: { node: true } }, null, 2)}\n`);
  const install = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `node@${MAJOR}`], {
    cwd: root,
    stdio: 'inherit',
  });
  if (install.status !== 0) {
    console.error(`test-on-node: npm install node@${MAJOR} failed (${install.error?.message ?? `exit ${install.status}`})`);
    process.exit(install.status ?? 1);
  }
  const version = installedVersion();
  if (!wanted(version)) {
    console.error(`test-on-node: ${binary} prints ${version ?? 'nothing'}, not v${MAJOR}: did the package's preinstall script run?`);
    process.exit(1);
  }
}

console.log(`test-on-node: vitest run test/e2e on Node ${installedVersion()}`);
const run = spawnSync(binary, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/e2e', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  // Anything that starts `node` by name gets this Node too, not the one npm put first on PATH.
  env: { ...process.env, PATH: `${join(prefix, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}` },
});
if (run.error !== undefined) console.error(`test-on-node: could not run vitest: ${run.error.message}`);
process.exit(run.status ?? 1);
