/**
 * Where a server's time went: `node bench/compare/profile-summary.ts FILE.cpuprofile [TOP]`
 * prints the functions with the most self time (from `bench:compare --profile`), with their
 * share of the samples that were not idle.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

const [file, topArg] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node bench/compare/profile-summary.ts FILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let busy = 0;
for (const id of profile.samples) {
  const frame = byId.get(id)!.callFrame;
  if (frame.functionName === '(idle)' || frame.functionName === '(program)') continue;
  busy++;
  const where = frame.url === '' ? '' : ` ${frame.url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/')}:${frame.lineNumber + 1}`;
  const key = `${frame.functionName || '(anonymous)'}${where}`;
  self.set(key, (self.get(key) ?? 0) + 1);
}
const total = profile.samples.length;
process.stdout.write(`${file}: ${total} samples, ${((busy / total) * 100).toFixed(1)}% not idle\n`);
for (const [key, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 25))) {
  process.stdout.write(`${((count / busy) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
}
