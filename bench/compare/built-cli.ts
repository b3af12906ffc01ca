/**
 * The shardws CLI as users run it: `dist/src/cli.js`, compiled by `tsc -p tsconfig.build.json`
 * (what `npm install` runs as `prepare`, and what the package's `bin` points at). The benchmark
 * scripts rebuild it before they start, so they never measure stale output.
 *
 * Why not `src/cli.ts` under type stripping: every thread that loads TypeScript also loads
 * Node's stripper (amaro, about 5 MB of heap and a WebAssembly instance per isolate), and
 * broadcast ran 15–30 % slower from source than from the build on this machine
 * (docs/performance.md). `fromSource` keeps that comparison one flag away.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function shardwsCli(fromSource: boolean): string {
  if (fromSource) return `${ROOT}src/cli.ts`;
  const tsc = spawnSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  if (tsc.status !== 0) throw new Error('building dist/ with tsc -p tsconfig.build.json failed');
  return `${ROOT}dist/src/cli.js`;
}
