/**
 * `shardws serve [APP] [options]`: its flags, their help and their checks, generated from the
 * option table (shared/config.ts OPTIONS), so every listen() option with a scalar value has a
 * flag, and a default or a bound is written down once; the Redis bridge's `--redis-*` flags come
 * from its own table (REDIS_OPTIONS) the same way. The few structured options (deflate, TLS,
 * origins, the Redis URL) have hand-made flags here.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { OPTIONS, REDIS_OPTIONS, optionValue } from '../shared/config.ts';
import type { CompressionMode, OptionSpec, ServerOptions } from '../shared/config.ts';
import type { RedisBridgeOptions } from './redis-bridge.ts';
import { UsageError, byteSize, decimal, joinNegativeValues, wholeNumber } from '../runtime/cli-args.ts';

type OptionName = keyof typeof OPTIONS;
type RedisOptionName = keyof typeof REDIS_OPTIONS;

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
/** The Redis bridge's flags (`--redis-streams`, …), by flag name. */
const REDIS_FLAGS = new Map<string, [RedisOptionName, OptionSpec]>((Object.entries(REDIS_OPTIONS) as [RedisOptionName, OptionSpec][]).map(([name, spec]) => [kebab(name), [name, spec]]));

/** Hand-made flags, with their placeholder and help line. */
const EXTRA_FLAGS: readonly (readonly [flag: string, placeholder: string, doc: string])[] = [
  ['deflate[=MODE]', '', 'permessage-deflate: shared (the mode when given alone) or dedicated (default off)'],
  ['origin', 'ORIGIN', 'allow upgrades only from this Origin; repeat for more (default any)'],
  ['tls-cert', 'FILE', 'serve wss:// with this PEM certificate; SIGHUP reloads it (default off)'],
  ['tls-key', 'FILE', "the certificate's PEM private key (default none)"],
  ['tls-ca', 'FILE', 'PEM CA chain sent with the certificate (default none)'],
  ['redis', 'URL', "join other servers' topics through Redis or a Redis Cluster (redis://host:port[/db]; default off)"],
];

const MiB = 1024 * 1024;

function describeDefault(name: string, spec: OptionSpec): string {
  if (name === 'workers') return 'one per core';
  switch (spec.kind) {
    case 'bytes':
      return spec.default >= MiB && spec.default % MiB === 0 ? `${spec.default / MiB}M` : spec.default >= 1024 && spec.default % 1024 === 0 ? `${spec.default / 1024}K` : String(spec.default);
    case 'seconds':
      return `${spec.default}`;
    case 'path':
      return spec.cliDefault ?? 'off';
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
  for (const [flag, placeholder, doc] of EXTRA_FLAGS) lines.push(helpLine(`--${flag}${placeholder === '' ? '' : ` ${placeholder}`}`, doc));
  for (const [flag, [name, spec]] of REDIS_FLAGS) lines.push(tableLine(flag, name, spec));
  lines.push(helpLine('-h, --help', 'this help'), '');
  return lines.join('\n');
})();

/** The value of one table flag, converted and checked against its spec. */
function flagValue(flag: string, name: string, spec: OptionSpec, raw: string | boolean): unknown {
  let value: unknown = raw;
  switch (spec.kind) {
    case 'count':
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
  /** `--redis` and its `--redis-*` flags: what to build the bridge from. */
  readonly redis: RedisBridgeOptions | undefined;
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

export function parseServeArgs(args: readonly string[]): ServeCommand {
  // Help wins over anything else on the line, bad values included.
  if (args.includes('--help') || args.includes('-h')) return { options: {}, redis: undefined, help: true };
  const normalized = joinNegativeValues(
    spellOutDeflate(args),
    (flag) =>
      (FLAGS.has(flag) && FLAGS.get(flag)![1].kind !== 'boolean') ||
      (REDIS_FLAGS.has(flag) && REDIS_FLAGS.get(flag)![1].kind !== 'boolean') ||
      EXTRA_FLAGS.some(([f, placeholder]) => f === flag && placeholder !== ''),
  );
  const config: NonNullable<ParseArgsConfig['options']> = {
    deflate: { type: 'string' },
    origin: { type: 'string', multiple: true },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    redis: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [flag, [, spec]] of [...FLAGS, ...REDIS_FLAGS]) config[flag] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  const { values, positionals } = parseArgs({ args: normalized, allowPositionals: true, allowNegative: true, strict: true, options: config });
  if (positionals.length > 1) throw new UsageError(`serve takes one APP module, got ${positionals.length}: ${positionals.join(' ')}`);

  const options: Record<string, unknown> = { app: positionals[0] };
  for (const [flag, [name, spec]] of FLAGS) {
    const raw = values[flag] as string | boolean | undefined;
    if (raw !== undefined) options[name] = flagValue(flag, name, spec, raw);
    else if (spec.kind === 'path' && spec.cliDefault !== undefined) options[name] = spec.cliDefault;
  }
  options.port ??= OPTIONS.port.default;

  const deflate = values.deflate as string | undefined;
  if (deflate !== undefined && deflate !== 'shared' && deflate !== 'dedicated') throw new UsageError(`--deflate must be shared or dedicated, got "${deflate}"`);
  if (deflate !== undefined) options.deflate = deflate as CompressionMode;
  const origins = values.origin as string[] | undefined;
  if (origins !== undefined) options.origins = origins;
  const certFile = values['tls-cert'] as string | undefined;
  const keyFile = values['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (certFile === undefined && values['tls-ca'] !== undefined) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
  if (certFile !== undefined) options.tls = { certFile, keyFile, caFile: values['tls-ca'] as string | undefined };
  return { options: options as ServerOptions, redis: redisOptions(values), help: values.help === true };
}

/** `--redis URL` and the `--redis-*` flags, checked together. */
function redisOptions(values: Record<string, string | boolean | (string | boolean)[] | undefined>): RedisBridgeOptions | undefined {
  const url = values.redis as string | undefined;
  const given = new Map<RedisOptionName, unknown>();
  for (const [flag, [name, spec]] of REDIS_FLAGS) {
    const raw = values[flag] as string | boolean | undefined;
    if (raw !== undefined) given.set(name, flagValue(flag, name, spec, raw));
  }
  if (url === undefined) {
    if (given.size > 0) throw new UsageError(`--${kebab([...given.keys()][0]!)} needs --redis URL`);
    return undefined;
  }
  if (!/^rediss?:\/\//.test(url)) throw new UsageError(`--redis must be a redis:// or rediss:// URL, got "${url}"`);
  if (given.get('redisStreams') !== true) {
    const streamsOnly = [...given.keys()].find((name) => name !== 'redisStreams');
    if (streamsOnly !== undefined) throw new UsageError(`--${kebab(streamsOnly)} needs --redis-streams`);
    return { url };
  }
  const maxAge = (given.get('redisMaxAge') as number | undefined) || undefined;
  if (given.has('redisRetention') && maxAge !== undefined) throw new UsageError('--redis-retention and --redis-max-age: one or the other');
  const retention = maxAge !== undefined ? { maxAge } : given.has('redisRetention') ? { maxLength: given.get('redisRetention') as number } : undefined;
  const outageBuffer = given.get('redisOutageBuffer') as number | undefined;
  return { url, mode: 'streams', ...(retention !== undefined ? { retention } : {}), ...(outageBuffer !== undefined ? { outageBuffer } : {}) };
}
