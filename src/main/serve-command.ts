/**
 * `shardws serve [APP] [options]` and `shardws proxy URL[,URL...] [options]`: their flags, their
 * help and their checks, generated from the option tables (shared/config.ts OPTIONS, and
 * DEFLATE_OPTIONS for `--deflate-*`), so every listen() option with a scalar value has a flag in
 * both, and a default or a bound is written down once; serve's `--redis-*` flags come from the
 * Redis bridge's own table (REDIS_OPTIONS) the same way. The few structured options (the deflate
 * preset, TLS, origins, appOptions, routes, the Redis URL, the proxy's own) have hand-made flags
 * here, each for the commands it applies to.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import type { ProxyTarget } from '../shared/app.ts';
import { DEFLATE_OPTIONS, DEFLATE_PRESETS, OPTIONS, REDIS_BRIDGE_FIELDS, REDIS_OPTIONS, optionValue } from '../shared/config.ts';
import type { DeflatePreset, OptionSpec, ServerOptions } from '../shared/config.ts';
import { DEFAULT_PROXY_TIMEOUT } from '../shared/proxy-target.ts';
import { UsageError, byteSize, decimal, joinNegativeValues, wholeNumber } from '../runtime/cli-args.ts';
import type { RedisBridgeOptions } from './redis-bridge.ts';

type OptionName = keyof typeof OPTIONS;
type RedisOptionName = keyof typeof REDIS_OPTIONS;

/** Flags whose name is not the option's name in kebab case (kept from earlier releases). */
const FLAG_NAMES: Partial<Record<OptionName, string>> = {
  maxPayloadLength: 'max-payload',
  workerYoungGenerationSize: 'worker-young-size',
  path: 'unix',
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
  (Object.entries(DEFLATE_OPTIONS) as [DeflateField, OptionSpec][]).map(([name, spec]) => [`deflate-${kebab(name)}`, [name, spec]]),
);

/** The Redis bridge's flags (`--redis-streams`, …), by flag name: serve only. */
const REDIS_FLAGS = new Map<string, [RedisOptionName, OptionSpec]>((Object.entries(REDIS_OPTIONS) as [RedisOptionName, OptionSpec][]).map(([name, spec]) => [kebab(name), [name, spec]]));

/** The environment variable `--tls-key`'s passphrase is read from (never on the command line, where ps shows it). */
export const TLS_PASSPHRASE_ENV = 'SHARDWS_TLS_PASSPHRASE';

export type Command = 'serve' | 'proxy';

/** Hand-made flags, with their placeholder, help line and the commands that have them. */
const EXTRA_FLAGS: readonly (readonly [flag: string, placeholder: string, doc: string, commands: readonly Command[]])[] = [
  ['origin', 'ORIGIN', 'allow upgrades only from this Origin; repeat for more (default any)', ['serve', 'proxy']],
  ['tls-cert', 'FILE', 'serve wss:// with this PEM certificate; SIGHUP reloads it (default off)', ['serve', 'proxy']],
  ['tls-key', 'FILE', `the certificate's PEM private key; its passphrase, if any, from $${TLS_PASSPHRASE_ENV} (default none)`, ['serve', 'proxy']],
  ['tls-ca', 'FILE', 'PEM CA chain sent with the certificate (default none)', ['serve', 'proxy']],
  ['app-options', 'JSON', "the app's options, given to its start(shard, options) in every worker (default none)", ['serve']],
  ['route', 'PATH=APP', 'serve APP on PATH (PATH/* for it and below); repeat for more (default none)', ['serve']],
  ['redis', 'URL', "join other servers' topics through Redis or a Redis Cluster (redis://host:port[/db]; default off)", ['serve']],
  ['watch', '', "reload the app in every worker when a file in its directory changes, connections kept (development; default off)", ['serve']],
  ['balance', 'POLICY', 'spread over the upstreams by least-connections or round-robin (default least-connections)', ['proxy']],
  ['passthrough', '', "relay the upstream's 101, then copy bytes: extensions end to end (default: message mode)", ['proxy']],
  ['upstream-deflate', '', 'offer permessage-deflate to the upstreams (default off: plain messages)', ['proxy']],
  ['upstream-timeout', 'SECS', `time an upstream has for its 101 before the client gets 504 (default ${DEFAULT_PROXY_TIMEOUT})`, ['proxy']],
];
const extraFlags = (command: Command) => EXTRA_FLAGS.filter(([, , , commands]) => commands.includes(command));
const PRESETS = Object.keys(DEFLATE_PRESETS) as DeflatePreset[];
const DEFLATE_PRESET_HELP = ['deflate[=PRESET]', `permessage-deflate: ${PRESETS.join(', ')} (shared when given alone; default off)`] as const;

/**
 * The flag that sets a table option (`maxPayloadLength` → `max-payload`), a deflate field
 * (`deflate.level`) or a redisBridge() field (`retention.maxLength` → `redis-retention`).
 */
export function flagForOption(name: string): string | undefined {
  for (const [flag, [option]] of FLAGS) if (option === name) return flag;
  for (const [flag, [field]] of DEFLATE_FLAGS) if (`deflate.${field}` === name) return flag;
  for (const [flag, [option]] of REDIS_FLAGS) if ((REDIS_BRIDGE_FIELDS as Partial<Record<RedisOptionName, string>>)[option] === name) return flag;
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

const USAGE: Readonly<Record<Command, readonly string[]>> = {
  serve: [
    'Usage: shardws serve [APP] [options]',
    '',
    'Serves APP (a module whose default export is defineApp({...})) on worker threads; without APP,',
    'the built-in demo (chat page at /, /echo, /broadcast, /chat). Durations are in seconds, sizes',
    'in bytes (16K, 4M and 1G are accepted).',
  ],
  proxy: [
    'Usage: shardws proxy URL[,URL...] [options]',
    '',
    'A WebSocket gateway: every upgrade is proxied to the ws:// or wss:// upstream URL(s), the path',
    "and query appended to the upstream's. In message mode (the default) the client's leg runs",
    'permessage-deflate (--deflate) and TLS on every worker, and the upstreams get plain messages; in',
    'passthrough mode bytes are copied instead. An upstream that refuses or is unreachable is skipped',
    'for a back-off and retried; one that does not answer in time gives the client 504, never a 101.',
  ],
};

function helpFor(command: Command): string {
  const lines = [...USAGE[command], '', 'Options:'];
  const tableLine = (flag: string, name: string, spec: OptionSpec): string => {
    if (spec.kind === 'boolean') return helpLine(`--[no-]${flag}`, `${spec.doc} (default ${describeDefault(name, spec)})`);
    const doc = spec.doc.includes('(default') ? spec.doc : `${spec.doc} (default ${describeDefault(name, spec)})`;
    return helpLine(`--${flag} ${spec.cli as string}`, doc);
  };
  for (const [flag, [name, spec]] of FLAGS) lines.push(tableLine(flag, name, spec));
  lines.push(helpLine(`--${DEFLATE_PRESET_HELP[0]}`, DEFLATE_PRESET_HELP[1]));
  for (const [flag, [name, spec]] of DEFLATE_FLAGS) lines.push(tableLine(flag, name, { ...spec, doc: `${spec.doc}, with --deflate` }));
  for (const [flag, placeholder, doc] of extraFlags(command)) lines.push(helpLine(`--${flag}${placeholder === '' ? '' : ` ${placeholder}`}`, doc));
  if (command === 'serve') for (const [flag, [name, spec]] of REDIS_FLAGS) lines.push(tableLine(flag, name, spec));
  lines.push(
    helpLine('-h, --help', 'this help'),
    '',
    'Logs go to stdout: pretty lines on a terminal, JSON lines (pino) otherwise (--log-format).',
    'Exit codes: 0 stopped by SIGINT or SIGTERM; 1 failed at run time (the app does not load, the',
    `port is taken); 2 bad command line (unknown option, bad value${command === 'serve' ? ', app file not found' : ''}).`,
    '',
  );
  return lines.join('\n');
}

export const SERVE_HELP = helpFor('serve');
export const PROXY_HELP = helpFor('proxy');

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
  /** `--redis` and its `--redis-*` flags: what to build the bridge from. */
  readonly redis: RedisBridgeOptions | undefined;
  readonly help: boolean;
  /** `--watch`: reload the app on file changes. */
  readonly watch?: boolean;
}

const isPreset = (name: string | undefined): name is DeflatePreset => name !== undefined && (PRESETS as string[]).includes(name);

/** `--deflate` alone means the shared preset, `--deflate PRESET` that one: parseArgs has no optional values. */
function spellOutDeflate(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--deflate') out.push(args[i]!);
    else if (isPreset(args[i + 1])) out.push(`--deflate=${args[++i]!}`);
    else out.push('--deflate=shared');
  }
  return out;
}

/** The parsed flags of either command, before what only one of them reads. */
function parseServerArgs(command: Command, args: readonly string[], env: NodeJS.ProcessEnv): { options: Record<string, unknown>; values: Record<string, unknown>; positionals: string[] } {
  const extras = extraFlags(command);
  const redisFlags = command === 'serve' ? REDIS_FLAGS : new Map<string, [RedisOptionName, OptionSpec]>();
  const normalized = joinNegativeValues(
    spellOutDeflate(args),
    (flag) =>
      (FLAGS.has(flag) && FLAGS.get(flag)![1].kind !== 'boolean') ||
      (redisFlags.has(flag) && redisFlags.get(flag)![1].kind !== 'boolean') ||
      DEFLATE_FLAGS.has(flag) ||
      extras.some(([f, placeholder]) => f === flag && placeholder !== ''),
  );
  const config: NonNullable<ParseArgsConfig['options']> = { deflate: { type: 'string' }, help: { type: 'boolean', short: 'h' } };
  for (const [flag, placeholder] of extras) {
    config[flag] = placeholder === '' ? { type: 'boolean' } : { type: 'string', multiple: flag === 'origin' || flag === 'route' };
  }
  for (const [flag, [, spec]] of [...FLAGS, ...redisFlags]) config[flag] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  for (const flag of DEFLATE_FLAGS.keys()) config[flag] = { type: 'string' };
  const { values, positionals } = parseArgs({ args: normalized, allowPositionals: true, allowNegative: true, strict: true, options: config });

  const options: Record<string, unknown> = {};
  for (const [flag, [name, spec]] of FLAGS) {
    const raw = values[flag] as string | boolean | undefined;
    if (raw !== undefined) options[name] = flagValue(flag, name, spec, raw);
  }
  if (options.path === undefined) options.port ??= OPTIONS.port.default;

  const deflate = values.deflate as string | undefined;
  if (deflate !== undefined && !isPreset(deflate)) throw new UsageError(`--deflate must be one of ${PRESETS.join(', ')}, got "${deflate}"`);
  const fields: Record<string, unknown> = {};
  for (const [flag, [name, spec]] of DEFLATE_FLAGS) {
    const raw = values[flag] as string | undefined;
    if (raw === undefined) continue;
    if (deflate === undefined) throw new UsageError(`--${flag} needs --deflate (or --deflate=dedicated)`);
    fields[name] = flagValue(flag, `deflate.${name}`, spec, raw);
  }
  if (deflate !== undefined) options.deflate = Object.keys(fields).length === 0 ? deflate : { preset: deflate, ...fields };
  const origins = values.origin as string[] | undefined;
  if (origins !== undefined) options.origins = origins;
  const certFile = values['tls-cert'] as string | undefined;
  const keyFile = values['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (certFile === undefined && values['tls-ca'] !== undefined) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
  const passphrase = env[TLS_PASSPHRASE_ENV];
  if (certFile !== undefined) options.tls = { certFile, keyFile, caFile: values['tls-ca'] as string | undefined, ...(passphrase === undefined ? {} : { passphrase }) };
  return { options, values, positionals };
}

export function parseServeArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeCommand {
  // Help wins over anything else on the line, bad values included.
  if (args.includes('--help') || args.includes('-h')) return { options: {}, redis: undefined, help: true };
  const { options, values, positionals } = parseServerArgs('serve', args, env);
  if (positionals.length > 1) throw new UsageError(`serve takes one APP module, got ${positionals.length}: ${positionals.join(' ')}`);
  const routes = values.route as string[] | undefined;
  if (routes !== undefined) {
    const table: Record<string, string> = {};
    for (const route of routes) {
      const eq = route.indexOf('=');
      if (eq <= 0 || eq === route.length - 1) throw new UsageError(`--route must be PATH=APP, got "${route}"`);
      table[route.slice(0, eq)] = route.slice(eq + 1);
    }
    options.routes = table;
  }
  const appOptions = values['app-options'] as string | undefined;
  if (appOptions !== undefined) {
    try {
      options.appOptions = JSON.parse(appOptions);
    } catch (error) {
      throw new UsageError(`--app-options must be JSON (${(error as Error).message}), got ${JSON.stringify(appOptions)}`);
    }
  }
  return { options: { app: positionals[0], ...options } as ServerOptions, redis: redisOptions(values), help: values.help === true, ...(values.watch === true ? { watch: true } : {}) };
}

/** `--redis URL` and the `--redis-*` flags, checked together. */
function redisOptions(values: Record<string, unknown>): RedisBridgeOptions | undefined {
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

export function parseProxyArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeCommand {
  if (args.includes('--help') || args.includes('-h')) return { options: {}, redis: undefined, help: true };
  const { options, values, positionals } = parseServerArgs('proxy', args, env);
  if (positionals.length !== 1) throw new UsageError(`proxy takes one argument, the upstream URL(s) joined by commas, got ${positionals.length}${positionals.length > 0 ? `: ${positionals.join(' ')}` : ''}`);
  const urls = positionals[0]!.split(',').filter((url) => url !== '');
  const balance = values.balance as string | undefined;
  if (balance !== undefined && balance !== 'least-connections' && balance !== 'round-robin') throw new UsageError(`--balance must be least-connections or round-robin, got "${balance}"`);
  const timeout = values['upstream-timeout'] as string | undefined;
  const proxy: ProxyTarget = {
    url: urls,
    mode: values.passthrough === true ? 'passthrough' : 'message',
    ...(balance !== undefined ? { balance: balance as 'least-connections' | 'round-robin' } : {}),
    ...(values['upstream-deflate'] === true ? { deflate: true } : {}),
    ...(timeout !== undefined ? { timeout: decimal('upstream-timeout', timeout) } : {}),
  };
  if (values.passthrough === true && values['upstream-deflate'] === true) throw new UsageError('--upstream-deflate is for message mode: in passthrough the client and the upstream negotiate themselves');
  return { options: { ...options, proxy } as ServerOptions, redis: undefined, help: values.help === true };
}
