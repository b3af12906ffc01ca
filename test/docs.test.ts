/**
 * The docs against the code: docs/api.md has an entry for every exported name, every member of
 * the public interfaces and every option (its row spelt from the option tables, default and
 * unit included); the flags the docs show exist.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BENCH_HELP } from '../bench/load/options.ts';
import { PROXY_HELP, SERVE_HELP } from '../src/main/serve-command.ts';
import { API_MD, exportedNames, members, optionRows } from './support/api-reference.ts';

const api = readFileSync(API_MD, 'utf8');
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `name` in backticks, at the start of a code span or followed by a non-name character. */
const mentions = (text: string, name: string): boolean => new RegExp('`' + escape(name) + '(?![\\w$])').test(text);

/**
 * The text of the section whose heading mentions `name` in backticks (or, `plain`, is exactly
 * that title), down to the next heading of its level or higher.
 */
function section(name: string, plain = false): string {
  const lines = api.split('\n');
  const start = lines.findIndex((line) => /^#{2,4} /.test(line) && (plain ? line.replace(/^#+ /, '') === name : mentions(line, name)));
  if (start < 0) return '';
  const level = /^#+/.exec(lines[start]!)![0].length;
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && /^#+/.exec(line)![0].length <= level);
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

describe('docs/api.md', () => {
  it.each([
    ['shardws', 'src/index.ts'],
    ['shardws/client', 'src/client/websocket.ts'],
    ['shardws/redis', 'src/redis.ts'],
  ])('has an entry for every name %s exports: a heading, or a row of a table of types', (_entry, path) => {
    const names = exportedNames(path);
    expect(names.length).toBeGreaterThan(2);
    const entries = api.split('\n').filter((line) => /^#{2,4} /.test(line) || /^\| [^|]*`/.test(line)).map((line) => (line.startsWith('|') ? line.split('|')[1]! : line));
    const missing = names.filter((name) => !entries.some((entry) => mentions(entry, name)));
    expect(missing, 'add a "### `Name`" entry (or a row in a table of types) to docs/api.md for each of these').toEqual([]);
  });

  it('has the row of every option of the option tables, spelt from them (default and unit included)', () => {
    const missing = optionRows().filter((row) => !api.includes(row));
    expect(missing, 'add (or correct) these rows in docs/api.md, Options').toEqual([]);
  });

  it.each([
    ['App', 'src/shared/app.ts'],
    ['ServerWebSocket', 'src/shared/app.ts'],
    ['Shard', 'src/shared/app.ts'],
    ['SendOptions', 'src/shared/app.ts'],
    ['WorkerStats', 'src/shared/app.ts'],
    ['UpgradeRequest', 'src/shared/app.ts'],
    ['UpgradeAccept', 'src/shared/app.ts'],
    ['UpgradeRejection', 'src/shared/app.ts'],
    ['ShardServer', 'src/main/listen.ts'],
    ['ServerStats', 'src/main/listen.ts'],
    ['ListenOptions', 'src/main/listen.ts'],
    ['TlsOptions', 'src/shared/config.ts'],
    ['DeflateConfig', 'src/shared/config.ts'],
    ['WebSocket', 'src/client/websocket.ts'],
    ['ClientOptions', 'src/client/client-options.ts'],
    ['ReconnectOptions', 'src/client/client-options.ts'],
    ['Disconnect', 'src/client/reconnect-policy.ts'],
    ['RedisBridgeOptions', 'src/main/redis-bridge.ts'],
    ['TopicBridge', 'src/main/topic-bridge.ts'],
    ['BridgeStats', 'src/main/topic-bridge.ts'],
  ])('documents every member of %s in its section', (name, path) => {
    const text = section(name);
    expect(text, `docs/api.md has no section for ${name}`).not.toBe('');
    const missing = members(path, name).filter((member) => !mentions(text, member) && !mentions(text, `deflate.${member}`));
    expect(missing, `document these members of ${name} in its section of docs/api.md`).toEqual([]);
  });

  it('documents every ServerOptions key, in the options section', () => {
    const text = section('Options', true);
    const keys = members('src/shared/config.ts', 'ServerOptions');
    expect(keys.length).toBeGreaterThan(25);
    expect(keys.filter((key) => !mentions(text, key))).toEqual([]);
  });
});

describe('flags in the docs', () => {
  /** Flags of other programs shown in the docs (docker, npm, the soak and fuzz scripts, bench:micro, bench/deflate-memory.ts). */
  const OTHERS = new Set(['--init', '--time', '--omit', '--save-dev', '--minutes', '--seconds', '--filter', '--ladder']);
  const known = new Set([...`${SERVE_HELP}\n${PROXY_HELP}\n${BENCH_HELP}`.matchAll(/--(?:\[no-\])?([a-z][a-z0-9-]*)/g)].flatMap(([, flag]) => [`--${flag}`, `--no-${flag}`]));

  it.each(['README.md', 'docs/operations.md', 'docs/security.md', 'docs/api.md'])('%s names only flags shardws has', (file) => {
    const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    const flags = new Set([...text.matchAll(/(?:^|[\s`(])(--[a-z][a-z0-9-]+)/g)].map(([, flag]) => flag!));
    expect(flags.size).toBeGreaterThan(0);
    expect([...flags].filter((flag) => !known.has(flag) && !OTHERS.has(flag))).toEqual([]);
  });
});
