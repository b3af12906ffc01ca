import { describe, expect, it } from 'vitest';
import { PROXY_HELP, SERVE_HELP, parseProxyArgs, parseServeArgs } from '../../src/main/serve-command.ts';
import { UsageError } from '../../src/runtime/cli-args.ts';
import { DEFLATE_OPTIONS, OPTIONS, resolveConfig } from '../../src/shared/config.ts';
import type { OptionSpec } from '../../src/shared/config.ts';

type OptionName = keyof typeof OPTIONS;

/** Every flag made from the option table: the option it sets, a valid value and what it becomes. */
const TABLE_FLAGS: readonly (readonly [flag: string, option: OptionName, raw: string, value: unknown])[] = [
  ['port', 'port', '9001', 9001],
  ['host', 'host', '127.0.0.1', '127.0.0.1'],
  ['unix', 'path', '/run/shardws.sock', '/run/shardws.sock'],
  ['workers', 'workers', '3', 3],
  ['backlog', 'backlog', '100', 100],
  ['accept', 'accept', 'reuseport', 'reuseport'],
  ['max-connections', 'maxConnections', '5000', 5000],
  ['max-payload', 'maxPayloadLength', '1M', 1024 * 1024],
  ['max-frame-size', 'maxFrameSize', '64K', 64 * 1024],
  ['max-fragments', 'maxFragments', '1000', 1000],
  ['idle-timeout', 'idleTimeout', '2.5', 2.5],
  ['close-timeout', 'closeTimeout', '3', 3],
  ['max-backpressure', 'maxBackpressure', '8M', 8 * 1024 * 1024],
  ['high-water-mark', 'highWaterMark', '128K', 128 * 1024],
  ['low-water-mark', 'lowWaterMark', '32K', 32 * 1024],
  ['slow-client', 'slowClient', 'drop', 'drop'],
  ['slow-client-timeout', 'slowClientTimeout', '30', 30],
  ['handshake-timeout', 'handshakeTimeout', '5', 5],
  ['max-handshakes', 'maxHandshakes', '100', 100],
  ['max-header-size', 'maxHeaderSize', '8K', 8 * 1024],
  ['http2-max-streams', 'http2MaxStreams', '50', 50],
  ['admin-port', 'adminPort', '9464', 9464],
  ['admin-host', 'adminHost', '0.0.0.0', '0.0.0.0'],
  ['stats-path', 'statsPath', '/s', '/s'],
  ['metrics-path', 'metricsPath', '/metrics', '/metrics'],
  ['health-path', 'healthPath', '/h', '/h'],
  ['log-level', 'logLevel', 'warn', 'warn'],
  ['log-format', 'logFormat', 'pretty', 'pretty'],
  ['shutdown-grace', 'shutdownGrace', '0.5', 0.5],
  ['heartbeat-timeout', 'heartbeatTimeout', '20', 20],
  ['max-lifetime', 'maxLifetime', '3600', 3600],
  ['presence-capacity', 'presenceCapacity', '1024', 1024],
  ['worker-young-size', 'workerYoungGenerationSize', '32M', 32 * 1024 * 1024],
  ['heap-growing-percent', 'heapGrowingPercent', '150', 150],
  ['pool-size', 'poolSize', '64M', 64 * 1024 * 1024],
  ['pool-threshold', 'poolThreshold', '4K', 4 * 1024],
];
/** The on/off flags: `--send-pings` / `--no-send-pings`… */
const BOOLEAN_FLAGS = ['send-pings', 'auto-pong', 'skip-utf8-validation', 'proxy-protocol', 'http2'];
/** The deflate option's fields, from DEFLATE_OPTIONS. */
const DEFLATE_FIELD_FLAGS: readonly (readonly [flag: string, field: string, raw: string, value: number | string])[] = [
  ['deflate-compressor', 'compressor', 'dedicated', 'dedicated'],
  ['deflate-decompressor', 'decompressor', 'dedicated', 'dedicated'],
  ['deflate-server-max-window-bits', 'serverMaxWindowBits', '12', 12],
  ['deflate-client-max-window-bits', 'clientMaxWindowBits', '10', 10],
  ['deflate-level', 'level', '6', 6],
  ['deflate-mem-level', 'memLevel', '9', 9],
  ['deflate-threshold', 'threshold', '1K', 1024],
];
/** Hand-made flags, as the help spells them. */
const EXTRA_FLAGS = ['deflate[=PRESET]', 'origin', 'tls-cert', 'tls-key', 'tls-ca', 'app-options', 'route', 'redis', 'watch'];
/** The Redis bridge's flags, from its table (REDIS_OPTIONS). */
const REDIS_FLAGS = ['[no-]redis-streams', 'redis-retention', 'redis-max-age', 'redis-outage-buffer'];

/** Flag name and placeholder of every help line that starts with "--". */
function helpFlags(): { flag: string; placeholder: string; line: string }[] {
  return SERVE_HELP.split('\n')
    .filter((line) => line.trimStart().startsWith('--'))
    .map((line) => {
      const [flag, placeholder] = line.trim().split(/\s+/);
      return { flag: flag!.slice(2), placeholder: /^[A-Z]+$/.test(placeholder!) ? placeholder! : '', line };
    });
}

const usageError = (args: string[]): Error => {
  try {
    parseServeArgs(args);
  } catch (error) {
    return error as Error;
  }
  throw new Error(`parseServeArgs(${JSON.stringify(args)}) did not throw`);
};

describe('parseServeArgs', () => {
  it('sets the CLI default port 8080 and nothing else: no stats, health or metrics on the clients\' port', () => {
    expect(parseServeArgs([])).toEqual({ options: { app: undefined, port: 8080 }, redis: undefined, help: false });
  });

  it('takes --watch (serve only), and the new options as flags: --max-lifetime, --presence-capacity', () => {
    expect(parseServeArgs(['app.ts', '--watch', '--max-lifetime', '3600', '--presence-capacity', '1024'])).toEqual({
      options: { app: 'app.ts', port: 8080, maxLifetime: 3600, presenceCapacity: 1024 },
      redis: undefined,
      help: false,
      watch: true,
    });
    expect(() => parseProxyArgs(['ws://upstream', '--watch'])).toThrow(/watch/);
  });

  it('takes one positional APP module', () => {
    expect(parseServeArgs(['app.ts', '--port', '1']).options).toMatchObject({ app: 'app.ts', port: 1 });
    expect(parseServeArgs(['--port', '1', 'app.ts']).options.app).toBe('app.ts');
    const error = usageError(['a.ts', 'b.ts']);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe('serve takes one APP module, got 2: a.ts b.ts');
  });

  it.each(TABLE_FLAGS)('--%s sets %s', (flag, option, raw, value) => {
    expect(parseServeArgs([`--${flag}`, raw]).options[option]).toEqual(value);
    expect(parseServeArgs([`--${flag}=${raw}`]).options[option]).toEqual(value);
  });

  it('maps every flag in the help to an option, and has a flag for every option the table gives one', () => {
    const inHelp = helpFlags().map((f) => f.flag);
    expect(inHelp.sort()).toEqual([...TABLE_FLAGS.map(([flag]) => flag), ...BOOLEAN_FLAGS.map((f) => `[no-]${f}`), ...DEFLATE_FIELD_FLAGS.map(([flag]) => flag), ...EXTRA_FLAGS, ...REDIS_FLAGS].sort());
    expect(DEFLATE_FIELD_FLAGS.map(([, field]) => field).sort()).toEqual(Object.keys(DEFLATE_OPTIONS).sort());
    const withFlag = (Object.entries(OPTIONS) as [OptionName, OptionSpec][]).filter(([, spec]) => spec.cli !== false).map(([name]) => name);
    expect([...TABLE_FLAGS.map(([, option]) => option), 'sendPings', 'autoPong', 'skipUtf8Validation', 'proxyProtocol', 'http2'].sort()).toEqual(withFlag.sort());
  });

  it('turns WebSockets over HTTP/2 on (with TLS: resolveConfig refuses it without)', () => {
    expect(parseServeArgs(['--http2', '--tls-cert', 'c.pem', '--tls-key', 'k.pem']).options.http2).toBe(true);
    expect(parseServeArgs([]).options.http2).toBeUndefined();
  });

  it('turns pings on and off', () => {
    expect(parseServeArgs([]).options.sendPings).toBeUndefined();
    expect(parseServeArgs(['--send-pings']).options.sendPings).toBe(true);
    expect(parseServeArgs(['--no-send-pings']).options.sendPings).toBe(false);
  });

  it('turns the opt-outs for trusted peers on and off', () => {
    expect(parseServeArgs(['--no-auto-pong', '--skip-utf8-validation']).options).toMatchObject({ autoPong: false, skipUtf8Validation: true });
    expect(parseServeArgs([]).options.autoPong).toBeUndefined();
    expect(resolveConfig(parseServeArgs([]).options, 1)).toMatchObject({ autoPong: true, skipUtf8Validation: false, maxFrameSize: 0, maxFragments: 0, slowClientTimeout: 0 });
  });

  it('gives what all the table flags produce to resolveConfig, which accepts it', () => {
    const args = TABLE_FLAGS.flatMap(([flag, , raw]) => [`--${flag}`, raw]);
    const { options } = parseServeArgs([...args, '--no-send-pings', '--deflate', '--origin', 'https://a.example']);
    const config = resolveConfig(options, 2);
    for (const [, option, , value] of TABLE_FLAGS) expect(config[option], option).toEqual(value);
    expect(config.sendPings).toBe(false);
    expect(config.deflate?.preset).toBe('shared');
    expect(config.origins).toEqual(['https://a.example']);
  });

  it('accepts an empty path to turn the stats and health endpoints off', () => {
    expect(parseServeArgs(['--stats-path', '', '--health-path=']).options).toMatchObject({ statsPath: '', healthPath: '' });
  });

  it.each([
    [['--max-payload', '65536'], 65536],
    [['--max-payload', '64K'], 64 * 1024],
    [['--max-payload', '64kib'], 64 * 1024],
    [['--max-payload', '16M'], 16 * 1024 * 1024],
    [['--max-payload', '1G'], 1024 ** 3],
  ])('reads sizes with suffixes: %j', (args, bytes) => {
    expect(parseServeArgs(args).options.maxPayloadLength).toBe(bytes);
  });

  it.each([
    [['--port', '-5'], '--port must be a whole number, got "-5"'],
    [['--port=-5'], '--port must be a whole number, got "-5"'],
    [['--port', 'abc'], '--port must be a whole number, got "abc"'],
    [['--workers', '-2'], '--workers must be a whole number, got "-2"'],
    [['--idle-timeout', '-1'], '--idle-timeout must be a number >= 0, got "-1"'],
    [['--idle-timeout', 'soon'], '--idle-timeout must be a number >= 0, got "soon"'],
    [['--max-payload', '-64K'], '--max-payload must be a size in bytes (e.g. 65536, 64K, 16M), got "-64K"'],
    [['--max-payload', '16T'], '--max-payload must be a size in bytes (e.g. 65536, 64K, 16M), got "16T"'],
  ])('refuses a bad number with our own message: %j', (args, message) => {
    const error = usageError(args);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(message);
  });

  it.each([
    [['--workers', '0'], '--workers must be an integer from 1 to 256, got 0'],
    [['--workers', '257'], '--workers must be an integer from 1 to 256, got 257'],
    [['--port', '65536'], '--port must be an integer from 0 to 65535, got 65536'],
    [['--max-payload', '0'], `--max-payload must be an integer from 1 to ${2 ** 31 - 1} (bytes), got 0`],
    [['--worker-young-size', '2G'], `--worker-young-size must be an integer from 0 to ${1024 ** 3} (bytes), got ${2 * 1024 ** 3}`],
    [['--idle-timeout', '86401'], '--idle-timeout must be a number of seconds from 0 to 86400, got 86401'],
    [['--handshake-timeout', '10000'], '--handshake-timeout must be a number of seconds from 0 to 120, got 10000 (it is in seconds now, no longer milliseconds)'],
    [['--slow-client', 'kill'], '--slow-client must be one of close, drop, custom, got kill'],
    [['--log-level', 'loud'], '--log-level must be one of fatal, error, warn, info, debug, trace, silent, got loud'],
    [['--stats-path', 'stats'], '--stats-path must start with "/", got stats'],
  ])('refuses an out-of-range value naming the flag, not the option: %j', (args, message) => {
    const error = usageError(args);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(message);
  });

  it('turns deflate on: alone it means shared, =PRESET picks a preset', () => {
    expect(parseServeArgs([]).options.deflate).toBeUndefined();
    expect(parseServeArgs(['--deflate']).options.deflate).toBe('shared');
    expect(parseServeArgs(['--deflate', 'app.ts']).options).toMatchObject({ deflate: 'shared', app: 'app.ts' });
    expect(parseServeArgs(['--deflate=shared']).options.deflate).toBe('shared');
    expect(parseServeArgs(['--deflate=dedicated']).options.deflate).toBe('dedicated');
    // The preset may follow as its own argument, as the other flags' values do.
    expect(parseServeArgs(['--deflate', 'dedicated', 'app.ts']).options).toMatchObject({ deflate: 'dedicated', app: 'app.ts' });
    expect(parseServeArgs(['--deflate', 'shared']).options).toMatchObject({ deflate: 'shared', app: undefined });
    expect(parseServeArgs(['--deflate', 'dedicated-compressor-small']).options.deflate).toBe('dedicated-compressor-small');
    const error = usageError(['--deflate=fast']);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe('--deflate must be one of shared, dedicated, dedicated-compressor, dedicated-compressor-small, got "fast"');
  });

  it.each(DEFLATE_FIELD_FLAGS)('--%s sets deflate.%s, with --deflate', (flag, field, raw, value) => {
    expect(parseServeArgs(['--deflate', `--${flag}`, raw]).options.deflate).toEqual({ preset: 'shared', [field]: value });
    expect(parseServeArgs(['--deflate=dedicated-compressor-small', `--${flag}=${raw}`]).options.deflate).toEqual({ preset: 'dedicated-compressor-small', [field]: value });
    const lonely = usageError([`--${flag}`, raw]);
    expect(lonely).toBeInstanceOf(UsageError);
    expect(lonely.message).toBe(`--${flag} needs --deflate (or --deflate=dedicated)`);
  });

  it('checks the deflate fields against DEFLATE_OPTIONS, naming the flag', () => {
    expect(usageError(['--deflate', '--deflate-level', '10']).message).toBe('--deflate-level must be an integer from 0 to 9, got 10');
    expect(usageError(['--deflate', '--deflate-server-max-window-bits', '-9']).message).toBe('--deflate-server-max-window-bits must be a whole number, got "-9"');
    expect(usageError(['--deflate', '--deflate-compressor', 'mine']).message).toBe('--deflate-compressor must be one of shared, dedicated, got mine');
    const { options } = parseServeArgs(['--deflate', 'dedicated', '--deflate-level', '9', '--deflate-server-max-window-bits', '10', '--deflate-decompressor=shared']);
    expect(resolveConfig(options, 1).deflate).toMatchObject({ preset: 'dedicated', compressor: 'dedicated', decompressor: 'shared', level: 9, serverMaxWindowBits: 10, memLevel: 8 });
  });

  it('reads --app-options as JSON', () => {
    expect(parseServeArgs(['--app-options', '{"greeting":"hi","n":[1,2]}']).options.appOptions).toEqual({ greeting: 'hi', n: [1, 2] });
    expect(parseServeArgs(['--app-options=42']).options.appOptions).toBe(42);
    const error = usageError(['--app-options', '{a:1}']);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toMatch(/^--app-options must be JSON \(.*\), got "\{a:1\}"$/);
  });

  it("reads the TLS key's passphrase from $SHARDWS_TLS_PASSPHRASE, never from the command line", () => {
    const args = ['--tls-cert', 'c.pem', '--tls-key', 'k.pem'];
    expect(parseServeArgs(args, { SHARDWS_TLS_PASSPHRASE: 's3cret' }).options.tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem', caFile: undefined, passphrase: 's3cret' });
    expect(parseServeArgs(args, {}).options.tls).not.toHaveProperty('passphrase');
  });

  it('collects repeated --origin flags', () => {
    expect(parseServeArgs([]).options.origins).toBeUndefined();
    expect(parseServeArgs(['--origin', 'https://a.example']).options.origins).toEqual(['https://a.example']);
    expect(parseServeArgs(['--origin', 'https://a.example', '--origin=https://b.example']).options.origins).toEqual(['https://a.example', 'https://b.example']);
  });

  it('takes TLS files in pairs, the CA optional', () => {
    expect(parseServeArgs([]).options.tls).toBeUndefined();
    expect(parseServeArgs(['--tls-cert', 'c.pem', '--tls-key', 'k.pem']).options.tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem', caFile: undefined });
    expect(parseServeArgs(['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--tls-ca', 'ca.pem']).options.tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' });
    for (const args of [['--tls-cert', 'c.pem'], ['--tls-key', 'k.pem'], ['--tls-key', 'k.pem', '--tls-ca', 'ca.pem']]) {
      const error = usageError(args);
      expect(error).toBeInstanceOf(UsageError);
      expect(error.message).toBe('--tls-cert and --tls-key go together');
    }
    const lonely = usageError(['--tls-ca', 'ca.pem']);
    expect(lonely).toBeInstanceOf(UsageError);
    expect(lonely.message).toBe('--tls-ca needs --tls-cert and --tls-key');
    // What the flags produce, resolveConfig accepts.
    const { options } = parseServeArgs(['--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
    expect(resolveConfig(options, 1).tls).toMatchObject({ certFile: 'c.pem', keyFile: 'k.pem' });
  });

  it('takes a redis:// or rediss:// URL for the bridge, apart from the listen options', () => {
    expect(parseServeArgs([]).redis).toBeUndefined();
    const plain = parseServeArgs(['--redis', 'redis://127.0.0.1:6379/2']);
    expect(plain.redis).toEqual({ url: 'redis://127.0.0.1:6379/2' });
    expect(plain.options).not.toHaveProperty('redis');
    expect(parseServeArgs(['--redis=rediss://cache.example:6380']).redis).toEqual({ url: 'rediss://cache.example:6380' });
    expect(parseServeArgs(['--redis', 'redis://r', '--no-redis-streams']).redis).toEqual({ url: 'redis://r' });
    for (const url of ['127.0.0.1:6379', 'http://127.0.0.1:6379', 'redis:/x']) {
      const error = usageError(['--redis', url]);
      expect(error).toBeInstanceOf(UsageError);
      expect(error.message).toBe(`--redis must be a redis:// or rediss:// URL, got "${url}"`);
    }
  });

  it('builds the streams mode from --redis-streams and its table flags, with their units', () => {
    expect(parseServeArgs(['--redis', 'redis://r', '--redis-streams']).redis).toEqual({ url: 'redis://r', mode: 'streams' });
    expect(parseServeArgs(['--redis', 'redis://r', '--redis-streams', '--redis-retention', '500', '--redis-outage-buffer', '64K']).redis).toEqual({
      url: 'redis://r',
      mode: 'streams',
      retention: { maxLength: 500 },
      outageBuffer: 64 * 1024,
    });
    expect(parseServeArgs(['--redis', 'redis://r', '--redis-streams', '--redis-max-age=3600']).redis).toEqual({ url: 'redis://r', mode: 'streams', retention: { maxAge: 3600 } });
    // 0 is the table's default: the count applies.
    expect(parseServeArgs(['--redis', 'redis://r', '--redis-streams', '--redis-max-age', '0']).redis).toEqual({ url: 'redis://r', mode: 'streams' });
  });

  it('refuses --redis-* flags that do not go together, naming the flag', () => {
    const cases: [string[], string][] = [
      [['--redis-streams'], '--redis-streams needs --redis URL'],
      [['--redis-retention', '5'], '--redis-retention needs --redis URL'],
      [['--redis', 'redis://r', '--redis-retention', '5'], '--redis-retention needs --redis-streams'],
      [['--redis', 'redis://r', '--redis-outage-buffer', '1M'], '--redis-outage-buffer needs --redis-streams'],
      [['--redis', 'redis://r', '--redis-streams', '--redis-retention', '5', '--redis-max-age', '60'], '--redis-retention and --redis-max-age: one or the other'],
      [['--redis', 'redis://r', '--redis-streams', '--redis-retention', '0'], '--redis-retention must be an integer from 1 to 2147483647, got 0'],
      [['--redis', 'redis://r', '--redis-streams', '--redis-max-age', '-1'], '--redis-max-age must be a number >= 0, got "-1"'],
    ];
    for (const [args, message] of cases) {
      const error = usageError(args);
      expect(error, args.join(' ')).toBeInstanceOf(UsageError);
      expect(error.message).toBe(message);
    }
  });

  it('asks for help with -h or --help', () => {
    expect(parseServeArgs([]).help).toBe(false);
    expect(parseServeArgs(['-h']).help).toBe(true);
    expect(parseServeArgs(['--help', '--port', '1']).help).toBe(true);
    // Help wins over a bad value or an unknown flag on the same line.
    expect(parseServeArgs(['--workers', '0', '--help']).help).toBe(true);
    expect(parseServeArgs(['--bogus', '-h']).help).toBe(true);
  });

  it('refuses unknown flags and a value on an on/off flag (through util.parseArgs)', () => {
    expect(usageError(['--bogus'])).toMatchObject({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
    expect(usageError(['--max-payload-length', '1'])).toMatchObject({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
    expect(usageError(['--send-pings=yes'])).toMatchObject({ code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' });
  });
});

describe('SERVE_HELP', () => {
  it('lists every option of the table that has a flag, with its placeholder', () => {
    const lines = helpFlags();
    for (const [flag, option] of TABLE_FLAGS) {
      const entry = lines.find((l) => l.flag === flag);
      expect(entry, flag).toBeDefined();
      expect(entry!.placeholder, flag).toBe(OPTIONS[option].cli);
      expect(entry!.line, flag).toContain(OPTIONS[option].doc);
    }
    expect(SERVE_HELP).toContain('\n  --[no-]send-pings ');
    expect(SERVE_HELP).toContain('-h, --help');
  });

  it('states a default on every line that starts with "--"', () => {
    const lines = helpFlags();
    expect(lines.length).toBeGreaterThan(25);
    for (const { line } of lines) {
      expect(line).toMatch(/\(default|; default /);
      // Once: a flag whose doc has its own default does not get a second one.
      expect(line.match(/default/g), line).toHaveLength(1);
    }
  });

  it('states the defaults the CLI uses', () => {
    const line = (flag: string): string => helpFlags().find((l) => l.flag === flag)!.line;
    expect(line('port')).toContain('(default 8080)');
    expect(line('workers')).toContain('one per core');
    expect(line('host')).toContain('(default: all, IPv4 and IPv6)');
    expect(line('max-payload')).toContain('(default 16M)');
    expect(line('high-water-mark')).toContain('(default 64K)');
    expect(line('idle-timeout')).toContain('(default 120)');
    expect(line('stats-path')).toContain('(default off)');
    expect(line('health-path')).toContain('(default off)');
    expect(line('metrics-path')).toContain('(default off)');
    expect(line('admin-port')).toContain('(default off)');
    expect(line('admin-host')).toContain('(default 127.0.0.1)');
    expect(line('[no-]send-pings')).toContain('(default on)');
    expect(line('log-level')).toContain('(default info)');
  });
});

describe('--route and parseProxyArgs', () => {
  it('reads --route PATH=APP, repeated, into routes', () => {
    expect(parseServeArgs(['--route', '/chat=chat.ts', '--route=/feed/*=./feed.ts']).options.routes).toEqual({ '/chat': 'chat.ts', '/feed/*': './feed.ts' });
    expect(() => parseServeArgs(['--route', 'chat.ts'])).toThrow(/--route must be PATH=APP/);
  });

  it('makes the gateway target from the URLs and the proxy flags, with every serve flag beside them', () => {
    const { options } = parseProxyArgs(['ws://a:1,wss://b:2/x', '--passthrough', '--balance', 'round-robin', '--upstream-timeout', '2.5', '--workers', '2', '--unix', '/run/gw.sock']);
    expect(options.proxy).toEqual({ url: ['ws://a:1', 'wss://b:2/x'], mode: 'passthrough', balance: 'round-robin', timeout: 2.5 });
    expect(options).toMatchObject({ workers: 2, path: '/run/gw.sock' });
    expect(options.statsPath).toBeUndefined();
    expect(options.port).toBeUndefined();
    const config = resolveConfig(options, 2);
    expect(config.proxy).toMatchObject({ urls: ['ws://a:1/', 'wss://b:2/x'], mode: 'passthrough', balance: 'round-robin', timeout: 2.5, deflate: false });
    expect(parseProxyArgs(['ws://a', '--upstream-deflate']).options.proxy).toMatchObject({ mode: 'message', deflate: true });
    expect(() => parseProxyArgs(['ws://a', '--passthrough', '--upstream-deflate'])).toThrow(/--upstream-deflate is for message mode/);
    expect(() => parseProxyArgs(['ws://a', 'ws://b'])).toThrow(/proxy takes one argument/);
    expect(() => parseProxyArgs(['ws://a', '--route', '/x=y.ts'])).toThrow(/Unknown option/);
    expect(PROXY_HELP).toContain('Usage: shardws proxy URL[,URL...] [options]');
  });
});
