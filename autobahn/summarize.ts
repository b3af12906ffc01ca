/**
 * Summarizes Autobahn|Testsuite reports:
 *   node autobahn/summarize.ts [reports-dir]   (default: autobahn/reports)
 * reads every `index.json` below the directory ({agent: {case: {behavior, behaviorClose, …}}}),
 * prints a per-group table for each agent, lists the failing cases, and exits 1 if any case has
 * a `behavior` or `behaviorClose` other than OK, NON-STRICT or INFORMATIONAL (or none was found).
 */
import { globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CaseResult {
  readonly behavior: string;
  readonly behaviorClose: string;
  readonly duration?: number;
  readonly remoteCloseCode?: number | null;
  readonly reportfile?: string;
}
type Index = Record<string, Record<string, CaseResult>>;

const PASSING = new Set(['OK', 'NON-STRICT', 'INFORMATIONAL']);
const COLUMNS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED'] as const;

const dir = process.argv[2] ?? 'autobahn/reports';
const files = globSync('**/index.json', { cwd: dir }).map((file) => join(dir, file));
if (files.length === 0) {
  console.error(`no index.json under ${dir}: did the test suite run?`);
  process.exit(1);
}

/** "12.3.4" → [12, 3, 4], for sorting case ids numerically. */
const idParts = (id: string): number[] => id.split('.').map(Number);
const compareIds = (a: string, b: string): number => {
  const x = idParts(a);
  const y = idParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
  return 0;
};

/** The column a case counts in: its worse verdict. */
function columnOf(r: CaseResult): (typeof COLUMNS)[number] {
  if (r.behavior === 'UNIMPLEMENTED') return 'UNIMPLEMENTED';
  if (!PASSING.has(r.behavior) || !PASSING.has(r.behaviorClose)) return 'FAILED';
  if (r.behavior === 'INFORMATIONAL') return 'INFORMATIONAL';
  if (r.behavior === 'NON-STRICT' || r.behaviorClose === 'NON-STRICT') return 'NON-STRICT';
  return 'OK';
}

let failed = 0;
let total = 0;
for (const file of files) {
  const index = JSON.parse(readFileSync(file, 'utf8')) as Index;
  for (const [agent, cases] of Object.entries(index)) {
    const groups = new Map<string, Record<(typeof COLUMNS)[number], number>>();
    const failures: string[] = [];
    for (const id of Object.keys(cases).sort(compareIds)) {
      const result = cases[id]!;
      const group = id.split('.')[0]!;
      const row = groups.get(group) ?? { OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 0, UNIMPLEMENTED: 0, FAILED: 0 };
      groups.set(group, row);
      row[columnOf(result)]++;
      total++;
      if (!PASSING.has(result.behavior) || !PASSING.has(result.behaviorClose)) {
        failed++;
        failures.push(`  ${id}: behavior ${result.behavior}, behaviorClose ${result.behaviorClose}${result.reportfile ? ` (${result.reportfile})` : ''}`);
      }
    }
    console.log(`\n${agent} (${file})`);
    console.log(`${'group'.padEnd(7)}${COLUMNS.map((c) => c.padStart(15)).join('')}`);
    for (const [group, row] of groups) console.log(`${group.padEnd(7)}${COLUMNS.map((c) => String(row[c]).padStart(15)).join('')}`);
    if (failures.length > 0) console.log(`failing cases:\n${failures.join('\n')}`);
  }
}

console.log(`\n${total} cases, ${failed} failing`);
process.exit(failed > 0 || total === 0 ? 1 : 0);
