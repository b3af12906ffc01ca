/**
 * What docs/api.md must cover, read from the sources: the names each package entry exports,
 * the members of the public interfaces, and one row per option of the option tables, spelt
 * exactly (default and unit included), so the reference cannot drift from the types.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagForOption } from '../../src/main/serve-command.ts';
import { DEFLATE_OPTIONS, OPTIONS, REDIS_BRIDGE_FIELDS, REDIS_OPTIONS } from '../../src/shared/config.ts';
import type { OptionSpec } from '../../src/shared/config.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const source = (path: string): string => readFileSync(resolve(ROOT, path), 'utf8');

/** Names a module exports, following `export … from './x.ts'` re-exports of whole names. */
export function exportedNames(path: string): string[] {
  const text = source(path).replace(/\/\*[^]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const names = new Set<string>();
  for (const [, list] of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const item of list!.split(',')) {
      const name = item.trim().split(/\s+as\s+/).at(-1)!.replace(/^type\s+/, '').trim();
      if (name !== '') names.add(name);
    }
  }
  for (const [, name] of text.matchAll(/export\s+(?:declare\s+)?(?:async\s+)?(?:function\*?|class|const|let|interface|type|enum)\s+([A-Za-z_$][\w$]*)/g)) names.add(name!);
  return [...names];
}

/** Members of `interface Name` (or the public ones of `class Name`) declared in `path`, in order. */
export function members(path: string, name: string): string[] {
  const text = source(path);
  const start = new RegExp(`export (?:interface|class) ${name}\\b[^{]*\\{`).exec(text);
  if (start === null) throw new Error(`${name} not found in ${path}`);
  const out: string[] = [];
  let depth = 1;
  for (const raw of text.slice(start.index + start[0].length).split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*') || line.startsWith('/*') || line.startsWith('//')) continue;
    if (depth === 1) {
      const member = /^(?:static\s+)?(?:readonly\s+)?(?:get\s+|set\s+)?([A-Za-z_$][\w$]*)\??\s*[:(<=]/.exec(line);
      if (member !== null && member[1] !== 'constructor') out.push(member[1]!);
    }
    for (const c of line) depth += c === '{' ? 1 : c === '}' ? -1 : 0;
    if (depth <= 0) break;
  }
  return [...new Set(out)];
}

const KiB = 1024;
const MiB = 1024 * KiB;

function bytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

/** `min to max`, or `≥ min` when there is no real maximum. */
const range = (min: number, max: number, format: (n: number) => string = String): string =>
  max === Number.MAX_SAFE_INTEGER ? `≥ ${format(min)}` : `${format(min)} to ${format(max)}`;

function describe(name: string, spec: OptionSpec): { readonly value: string; readonly unit: string } {
  switch (spec.kind) {
    case 'count':
      return { value: name === 'workers' ? 'one per core' : String(spec.default), unit: `integer, ${range(spec.min, spec.max)}` };
    case 'bytes':
      return { value: bytes(spec.default), unit: `bytes, ${range(spec.min, spec.max, bytes)}` };
    case 'seconds':
      return { value: `${spec.default} s`, unit: `seconds, 0 to ${spec.max}` };
    case 'choice':
      return { value: `\`'${spec.default}'\``, unit: spec.values.map((v) => `\`'${v}'\``).join(', ') };
    case 'path':
      return { value: spec.default === '' ? "`''` (off)" : `\`'${spec.default}'\``, unit: "path, or `''` for none" };
    case 'port':
      return { value: spec.default === null ? '`null` (off)' : String(spec.default), unit: 'port, 0 (a free one) or `null`' };
    case 'boolean':
      return { value: `\`${spec.default}\``, unit: 'boolean' };
    case 'text':
      return { value: spec.default === undefined ? '(unset)' : `\`'${spec.default}'\``, unit: 'string' };
  }
}

/** The row docs/api.md must have for one table option: name, flag, default, unit, description. */
export function optionRow(name: string, spec: OptionSpec): string {
  const flag = flagForOption(name);
  const { value, unit } = describe(name, spec);
  return `| \`${name}\` | ${flag === undefined ? '(none)' : `\`--${flag}\``} | ${value} | ${unit} | ${spec.doc} |`;
}

/** Every table option's row: OPTIONS, the deflate fields as `deflate.<name>`, redisBridge()'s numbers by their field. */
export function optionRows(): string[] {
  return [
    ...Object.entries(OPTIONS).map(([name, spec]) => optionRow(name, spec as OptionSpec)),
    ...Object.entries(DEFLATE_OPTIONS).map(([name, spec]) => optionRow(`deflate.${name}`, spec)),
    ...Object.entries(REDIS_BRIDGE_FIELDS).map(([name, field]) => optionRow(field, REDIS_OPTIONS[name as keyof typeof REDIS_BRIDGE_FIELDS])),
  ];
}

export const API_MD = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/api.md');
