/**
 * `shardws serve [APP] [options]`: its flags, their help and their checks, generated from the
 * option tables (shared/config.ts OPTIONS, and DEFLATE_OPTIONS for `--deflate-*`), so every
 * listen() option with a scalar value has a flag, and a default or a bound is written down once.
 * The few structured options (the deflate mode, TLS, origins, appOptions, the Redis bridge) have
 * hand-made flags here.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { DEFLATE_OPTIONS, OPTIONS, optionValue } from '../shared/config.ts';
import type { CompressionMode, OptionSpec, ServerOptions } from '../shared/config.ts';
import { UsageError, byteSize, decimal, joinNegativeValues, wholeNumber } from '../runtime/cli-args.ts';

type OptionName = keyof typeof OPTIONS;

/** Flags whose name is not the option's name in kebab case (kept from earlier releases). */
const FLAG_NAMES: Partial<Record<OptionName, string>> = {
  maxPayloadLength: 'max-payload',
  workerYoungGenerationSize: 'worker-young-size',
};

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const flagOf = (name: OptionName): string => FLAG_NAMES[name] ?? kebab(name);

/** The table's options that have a flag, by flag name. */
const FLAGS = new Map<string, [OptionName, OptionSpec]>(
  (Object.entries(OPTIONS) as [OptionName, OptionSpec][]).filter(([, spec]) => spec.cli !== false).map(([name, spec]) => [flagOf(name), [name, spec]]),
);

type DeflateField = keyof typeof DEFLATE_OPTIONS;

/** The deflate option's fields, by flag name (`--deflate-level`...). */
const DEFLATE_FLAGS = new Map<string, [DeflateField, OptionSpec]>(
  (Object.entries(DEFLATE_OPTIONS) as [DeflateField, OptionSpec][]).map(([name, spec]) => [`deflate-${name === 'serverMaxWindowBits' ? 'window-bits' : kebab(name)}`, [name, spec]]),
);

/** The environment variable `--tls-key`'s passphrase is read from (never on the command line, where ps shows it). */
export const TLS_PASSPHRASE_ENV = 'SHARDWS_TLS_PASSPHRASE';

/** Hand-made flags, with their placeholder and help line. */
const EXTRA_FLAGS: readonly (readonly [flag: string, placeholder: string, doc: string])[] = [
  ['origin', 'ORIGIN', 'allow upgrades only from this Origin; repeat for more (default any)'],
  ['tls-cert', 'FILE', 'serve wss:// with this PEM certificate; SIGHUP reloads it (default off)'],
  ['tls-key', 'FILE', `the certificate's PEM private key; its passphrase, if any, from $${TLS_PASSPHRASE_ENV} (default none)`],
  ['tls-ca', 'FILE', 'PEM CA chain sent with the certificate (default none)'],
  ['app-options', 'JSON', "the app's options, given to its start(shard, options) in every worker (default none)"],
  ['redis', 'URL', "join other servers' topics through Redis (redis://host:port[/db]; default off)"],
];
const DEFLATE_MODE_HELP = ['deflate[=MODE]', 'permessage-deflate: shared (the mode when given alone) or dedicated (default off)'] as const;

/** The flag that sets a table option (`maxPayloadLength` → `max-payload`) or a deflate field (`deflate.level`). */
export function flagForOption(name: string): string | undefined {
  for (const [flag, [option]] of FLAGS) if (option === name) return flag;
  for (const [flag, [field]] of DEFLATE_FLAGS) if (`deflate.${field}` === name) return flag;
  return undefined;
}

const MiB = 1024 * 1024;

function describeDefault(name: string, spec: OptionSpec): string {
  if (name === 'workers') return 'one per core';
  switch (spec.kind) {
    case 'bytes':
      return spec.default >= MiB && spec.default % MiB === 0 ? `${spec.default / MiB}M` : spec.default >= 1024 && spec.default % 1024 === 0 ? `${spec.default / 1024}K` : String(spec.default);
    case 'seconds':
      return `${spec.default}`;
    case 'path':
    case 'port':
      return spec.default === null || spec.default === '' ? 'off' : String(spec.default);
    case 'boolean':
      return spec.default ? 'on' : 'off';
    case 'text':
      return spec.default ?? 'none';
    default:
      return String(spec.default);
  }
}

function helpLine(left: string, doc: string): string {
  return `  ${left.padEnd(28)} ${doc}`;
}

export const SERVE_HELP = (() => {
  const lines = [
    'Usage: shardws serve [APP] [options]',
    '',
    'Serves APP (a module whose default export is defineApp({...})) on worker threads; without APP,',
    'the built-in demo (chat page at /, /echo, /broadcast, /chat). Durations are in seconds, sizes',
    'in bytes (16K, 4M and 1G are accepted).',
    '',
    'Options:',
  ];
  const tableLine = (flag: string, name: string, spec: OptionSpec): string => {
    if (spec.kind === 'boolean') return helpLine(`--[no-]${flag}`, `${spec.doc} (default ${describeDefault(name, spec)})`);
    const doc = spec.doc.includes('(default') ? spec.doc : `${spec.doc} (default ${describeDefault(name, spec)})`;
    return helpLine(`--${flag} ${spec.cli as string}`, doc);
  };
  for (const [flag, [name, spec]] of FLAGS) lines.push(tableLine(flag, name, spec));
  lines.push(helpLine(`--${DEFLATE_MODE_HELP[0]}`, DEFLATE_MODE_HELP[1]));
  for (const [flag, [name, spec]] of DEFLATE_FLAGS) lines.push(tableLine(flag, name, { ...spec, doc: `${spec.doc}, with --deflate` }));
  for (const [flag, placeholder, doc] of EXTRA_FLAGS) lines.push(helpLine(`--${flag}${placeholder === '' ? '' : ` ${placeholder}`}`, doc));
  lines.push(
    helpLine('-h, --help', 'this help'),
    '',
    'Logs go to stdout: pretty lines on a terminal, JSON lines (pino) otherwise (--log-format).',
    'Exit codes: 0 stopped by SIGINT or SIGTERM; 1 failed at run time (the app does not load, the',
    'port is taken); 2 bad command line (unknown option, bad value, app file not found).',
    '',
  );
  return lines.join('\n');
})();

/** The value of one table flag, converted and checked against its spec. */
function flagValue(flag: string, name: string, spec: OptionSpec, raw: string | boolean): unknown {
  let value: unknown = raw;
  switch (spec.kind) {
    case 'count':
    case 'port':
      value = wholeNumber(flag, raw as string);
      break;
    case 'bytes':
      value = byteSize(flag, raw as string);
      break;
    case 'seconds':
      value = decimal(flag, raw as string);
      break;
    default:
      break;
  }
  try {
    return optionValue(name, spec, value);
  } catch (error) {
    // The table's message names the option; on the command line, name the flag.
    throw new UsageError((error as Error).message.replace(/^option \S+/, `--${flag}`));
  }
}

export interface ServeCommand {
  readonly options: ServerOptions;
  readonly redis: string | undefined;
  readonly help: boolean;
}

/** `--deflate` alone means shared mode, `--deflate MODE` that mode: parseArgs has no optional values. */
function spellOutDeflate(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--deflate') out.push(args[i]!);
    else if (args[i + 1] === 'shared' || args[i + 1] === 'dedicated') out.push(`--deflate=${args[++i]!}`);
    else out.push('--deflate=shared');
  }
  return out;
}

export function parseServeArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeCommand {
  // Help wins over anything else on the line, bad values included.
  if (args.includes('--help') || args.includes('-h')) return { options: {}, redis: undefined, help: true };
  const normalized = joinNegativeValues(
    spellOutDeflate(args),
    (flag) => (FLAGS.has(flag) && FLAGS.get(flag)![1].kind !== 'boolean') || DEFLATE_FLAGS.has(flag) || EXTRA_FLAGS.some(([f, placeholder]) => f === flag && placeholder !== ''),
  );
  const config: NonNullable<ParseArgsConfig['options']> = {
    deflate: { type: 'string' },
    origin: { type: 'string', multiple: true },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    'app-options': { type: 'string' },
    redis: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [flag, [, spec]] of FLAGS) config[flag] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  for (const flag of DEFLATE_FLAGS.keys()) config[flag] = { type: 'string' };
  const { values, positionals } = parseArgs({ args: normalized, allowPositionals: true, allowNegative: true, strict: true, options: config });
  if (positionals.length > 1) throw new UsageError(`serve takes one APP module, got ${positionals.length}: ${positionals.join(' ')}`);

  const options: Record<string, unknown> = { app: positionals[0] };
  for (const [flag, [name, spec]] of FLAGS) {
    const raw = values[flag] as string | boolean | undefined;
    if (raw !== undefined) options[name] = flagValue(flag, name, spec, raw);
  }
  options.port ??= OPTIONS.port.default;

  const deflate = values.deflate as string | undefined;
  if (deflate !== undefined && deflate !== 'shared' && deflate !== 'dedicated') throw new UsageError(`--deflate must be shared or dedicated, got "${deflate}"`);
  const fields: Record<string, unknown> = {};
  for (const [flag, [name, spec]] of DEFLATE_FLAGS) {
    const raw = values[flag] as string | undefined;
    if (raw === undefined) continue;
    if (deflate === undefined) throw new UsageError(`--${flag} needs --deflate (or --deflate=dedicated)`);
    fields[name] = flagValue(flag, `deflate.${name}`, spec, raw);
  }
  if (deflate !== undefined) options.deflate = Object.keys(fields).length === 0 ? (deflate as CompressionMode) : { mode: deflate as CompressionMode, ...fields };
  const origins = values.origin as string[] | undefined;
  if (origins !== undefined) options.origins = origins;
  const certFile = values['tls-cert'] as string | undefined;
  const keyFile = values['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (certFile === undefined && values['tls-ca'] !== undefined) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
  const passphrase = env[TLS_PASSPHRASE_ENV];
  if (certFile !== undefined) options.tls = { certFile, keyFile, caFile: values['tls-ca'] as string | undefined, ...(passphrase === undefined ? {} : { passphrase }) };
  const appOptions = values['app-options'] as string | undefined;
  if (appOptions !== undefined) {
    try {
      options.appOptions = JSON.parse(appOptions);
    } catch (error) {
      throw new UsageError(`--app-options must be JSON (${(error as Error).message}), got ${JSON.stringify(appOptions)}`);
    }
  }
  const redis = values.redis as string | undefined;
  if (redis !== undefined && !/^rediss?:\/\//.test(redis)) throw new UsageError(`--redis must be a redis:// or rediss:// URL, got "${redis}"`);
  return { options: options as ServerOptions, redis, help: values.help === true };
}
