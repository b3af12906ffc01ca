import { describe, expect, it } from 'vitest';
import { DEFLATE_DEFAULTS, DEFLATE_OPTIONS, DEFLATE_PRESETS, OPTIONS, REDIS_OPTIONS, optionValue, resolveConfig } from '../src/shared/config.ts';
import type { DeflatePreset, OptionSpec, ServerOptions } from '../src/shared/config.ts';

/** resolveConfig with options a type checker would refuse (what plain JavaScript callers may pass). */
const resolve = (options: Record<string, unknown>, defaultWorkers = 4) => resolveConfig(options as ServerOptions, defaultWorkers);

describe('resolveConfig defaults', () => {
  it('takes every scalar default from the OPTIONS table, and the workers from the caller', () => {
    const config = resolveConfig({}, 6);
    for (const [name, spec] of Object.entries(OPTIONS) as [keyof typeof OPTIONS, OptionSpec][]) {
      if (name === 'workers' || name === 'logFormat') continue;
      expect(config[name], name).toBe(spec.default);
    }
    expect(config.workers).toBe(6);
    // `auto` is listen()'s to decide from its stdout; a config made without it logs JSON.
    expect(config.logFormat).toBe('json');
    expect(resolveConfig({ logFormat: 'pretty' }, 1).logFormat).toBe('pretty');
    expect(config).toMatchObject({ app: null, deflate: null, tls: null, origins: null, routes: [], proxy: null, bridged: false, clustered: false });
    expect(resolveConfig({}, 1, 'plain', true)).toMatchObject({ bridged: 'plain', clustered: true });
    // Nothing beyond the table and the structured options.
    expect(Object.keys(config).sort()).toEqual([...Object.keys(OPTIONS), 'app', 'appOptions', 'deflate', 'tls', 'origins', 'routes', 'proxy', 'bridged', 'clustered'].sort());
  });

  it('runs one worker per core by default, at most 256 of them', () => {
    expect(resolveConfig({}, 300).workers).toBe(256);
    expect(resolveConfig({}, 1).workers).toBe(1);
    expect(() => resolveConfig({ workers: 300 }, 2)).toThrow(/workers must be an integer from 1 to 256/);
  });

  it('has the documented defaults', () => {
    const config = resolveConfig({}, 2);
    expect(config).toMatchObject({
      port: 8080,
      host: undefined,
      backlog: 511,
      maxConnections: 0,
      maxPayloadLength: 16 * 1024 * 1024,
      idleTimeout: 120,
      sendPings: true,
      closeTimeout: 10,
      maxBackpressure: 4 * 1024 * 1024,
      highWaterMark: 64 * 1024,
      lowWaterMark: 16 * 1024,
      slowClient: 'close',
      handshakeTimeout: 10,
      maxHandshakes: 4096,
      maxHeaderSize: 16 * 1024,
      statsPath: '',
      metricsPath: '',
      healthPath: '',
      logLevel: 'info',
      shutdownGrace: 10,
      heartbeatTimeout: 10,
      workerYoungGenerationSize: 16 * 1024 * 1024,
      heapGrowingPercent: 300,
      poolSize: 16 * 1024 * 1024,
      poolThreshold: 16 * 1024,
    });
  });

  it('treats an option given as undefined as not given', () => {
    expect(resolveConfig({ port: undefined, workers: undefined, deflate: undefined, tls: undefined }, 3)).toMatchObject({ port: 8080, workers: 3, deflate: null, tls: null });
  });

  it('every default in the tables passes its own check (workers: the caller gives it)', () => {
    for (const [name, spec] of Object.entries({ ...OPTIONS, ...REDIS_OPTIONS }) as [string, OptionSpec][]) {
      if (name === 'workers') continue;
      expect(optionValue(name, spec, spec.default), name).toBe(spec.default);
    }
  });

  it('keeps the given values, and the bridged flag', () => {
    const config = resolveConfig(
      { port: 0, host: '127.0.0.1', workers: 3, idleTimeout: 0.5, sendPings: false, slowClient: 'custom', statsPath: '/s', logLevel: 'silent' },
      8,
      'durable',
    );
    expect(config).toMatchObject({ port: 0, host: '127.0.0.1', workers: 3, idleTimeout: 0.5, sendPings: false, slowClient: 'custom', statsPath: '/s', logLevel: 'silent', bridged: 'durable' });
  });

  it('reads the app as a string, a file: URL as its href', () => {
    expect(resolveConfig({ app: './app.ts' }, 1).app).toBe('./app.ts');
    expect(resolveConfig({ app: new URL('file:///srv/app.ts') }, 1).app).toBe('file:///srv/app.ts');
  });

  it('returns a frozen config, with frozen structured values', () => {
    const config = resolveConfig({ deflate: true, origins: ['https://a.example'], tls: { cert: 'C', key: 'K' } }, 1);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.deflate)).toBe(true);
    expect(Object.isFrozen(config.origins)).toBe(true);
    expect(Object.isFrozen(config.tls)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('resolveConfig validation, by kind', () => {
  it.each([
    ['port', -1, 'option port must be an integer from 0 to 65535, got -1'],
    ['port', 65536, 'option port must be an integer from 0 to 65535, got 65536'],
    ['port', 80.5, 'got 80.5'],
    ['port', '80', 'got 80'],
    ['port', Number.NaN, 'got NaN'],
    ['backlog', 0, 'option backlog must be an integer from 1 to 65535'],
    ['workers', 0, 'option workers must be an integer from 1 to 256, got 0'],
    ['workers', 257, 'option workers must be an integer from 1 to 256, got 257'],
    ['maxConnections', -1, 'option maxConnections must be an integer from 0'],
  ])('count: refuses %s = %j', (name, value, message) => {
    expect(() => resolve({ [name]: value })).toThrow(RangeError);
    expect(() => resolve({ [name]: value })).toThrow(message);
  });

  it.each([
    ['maxPayloadLength', 0, `option maxPayloadLength must be an integer from 1 to ${2 ** 31 - 1} (bytes), got 0`],
    ['maxPayloadLength', 2 ** 31, '(bytes), got 2147483648'],
    ['maxHeaderSize', 1023, 'option maxHeaderSize must be an integer from 1024 to 1048576 (bytes), got 1023'],
    ['poolSize', 1024, 'option poolSize must be an integer from 65536'],
    ['workerYoungGenerationSize', -1, 'option workerYoungGenerationSize must be an integer from 0'],
    ['highWaterMark', 1.5, '(bytes), got 1.5'],
    ['poolThreshold', '16K', '(bytes), got 16K'],
  ])('bytes: refuses %s = %j', (name, value, message) => {
    expect(() => resolve({ [name]: value })).toThrow(RangeError);
    expect(() => resolve({ [name]: value })).toThrow(message);
  });

  it('bytes and counts: accepts both bounds', () => {
    expect(resolveConfig({ port: 0, maxHeaderSize: 1024, workerYoungGenerationSize: 0 }, 1)).toMatchObject({ port: 0, maxHeaderSize: 1024, workerYoungGenerationSize: 0 });
    expect(resolveConfig({ port: 65535, maxHeaderSize: 1024 * 1024, workers: 256 }, 1)).toMatchObject({ port: 65535, maxHeaderSize: 1024 * 1024, workers: 256 });
  });

  it.each([
    ['idleTimeout', -1, 'option idleTimeout must be a number of seconds from 0 to 86400, got -1'],
    ['idleTimeout', 86_401, 'option idleTimeout must be a number of seconds from 0 to 86400, got 86401'],
    ['closeTimeout', Number.POSITIVE_INFINITY, 'got Infinity'],
    ['closeTimeout', Number.NaN, 'got NaN'],
    ['closeTimeout', '5', 'got 5'],
  ])('seconds: refuses %s = %j', (name, value, message) => {
    expect(() => resolve({ [name]: value })).toThrow(RangeError);
    expect(() => resolve({ [name]: value })).toThrow(message);
  });

  it('seconds: accepts 0, fractions and the maximum', () => {
    expect(resolveConfig({ idleTimeout: 0, closeTimeout: 0.25, handshakeTimeout: 120 }, 1)).toMatchObject({ idleTimeout: 0, closeTimeout: 0.25, handshakeTimeout: 120 });
  });

  it.each([
    ['handshakeTimeout', 10_000, 120],
    ['shutdownGrace', 5000, 300],
    ['heartbeatTimeout', 10_000, 300],
  ])('seconds: a large %s (%i, milliseconds before) says it is in seconds now', (name, value, max) => {
    expect(() => resolve({ [name]: value })).toThrow(
      `option ${name} must be a number of seconds from 0 to ${max}, got ${value} (it is in seconds now, no longer milliseconds)`,
    );
  });

  it('seconds: no milliseconds hint for a value that is not too large, nor for options never in milliseconds', () => {
    expect(() => resolve({ handshakeTimeout: -1 })).toThrow(/got -1$/);
    expect(() => resolve({ handshakeTimeout: '10000' })).toThrow(/got 10000$/);
    expect(() => resolve({ idleTimeout: 120_000 })).toThrow(/got 120000$/);
    expect(() => resolve({ closeTimeout: 10_000 })).toThrow(/got 10000$/);
  });

  it.each([
    ['slowClient', 'kill', 'option slowClient must be one of close, drop, custom, got kill'],
    ['slowClient', 1, 'got 1'],
    ['logLevel', 'verbose', 'option logLevel must be one of fatal, error, warn, info, debug, trace, silent, got verbose'],
    ['logLevel', 'INFO', 'got INFO'],
  ])('choice: refuses %s = %j', (name, value, message) => {
    expect(() => resolve({ [name]: value })).toThrow(RangeError);
    expect(() => resolve({ [name]: value })).toThrow(message);
  });

  it('choice: accepts every listed value', () => {
    for (const slowClient of ['close', 'drop', 'custom'] as const) expect(resolveConfig({ slowClient }, 1).slowClient).toBe(slowClient);
    for (const logLevel of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) expect(resolveConfig({ logLevel }, 1).logLevel).toBe(logLevel);
  });

  it.each([
    ['statsPath', 'stats', 'option statsPath must start with "/", got stats'],
    ['metricsPath', 'http://x/metrics', 'option metricsPath must start with "/", got http://x/metrics'],
    ['healthPath', 42, 'option healthPath must start with "/", got 42'],
  ])('path: refuses %s = %j', (name, value, message) => {
    expect(() => resolve({ [name]: value })).toThrow(RangeError);
    expect(() => resolve({ [name]: value })).toThrow(message);
  });

  it('path: accepts a path, and the empty string (off)', () => {
    expect(resolveConfig({ statsPath: '/stats', metricsPath: '/metrics', healthPath: '' }, 1)).toMatchObject({ statsPath: '/stats', metricsPath: '/metrics', healthPath: '' });
  });

  it('port: takes a port, 0 (a free one) or null (no listener), and refuses anything else', () => {
    expect(resolveConfig({}, 1).adminPort).toBeNull();
    expect(resolveConfig({ adminPort: 0 }, 1).adminPort).toBe(0);
    expect(resolveConfig({ adminPort: 9464 }, 1).adminPort).toBe(9464);
    expect(resolveConfig({ adminPort: null }, 1).adminPort).toBeNull();
    for (const value of [-1, 65536, 1.5, '9464']) {
      expect(() => resolve({ adminPort: value })).toThrow(RangeError);
      expect(() => resolve({ adminPort: value })).toThrow(`option adminPort must be a port from 0 to 65535 (or null for none), got ${String(value)}`);
    }
  });

  it('boolean: refuses anything but true and false', () => {
    for (const value of ['yes', 1, 0, 'false', null]) {
      expect(() => resolve({ sendPings: value })).toThrow(TypeError);
      expect(() => resolve({ sendPings: value })).toThrow(`option sendPings must be true or false, got ${String(value)}`);
    }
  });

  it('text: refuses a host that is not a string', () => {
    expect(() => resolve({ host: 127 })).toThrow(TypeError);
    expect(() => resolve({ host: 127 })).toThrow('option host must be a string, got 127');
    expect(resolveConfig({ host: '::1' }, 1).host).toBe('::1');
  });

  it('origins: an array of strings, copied', () => {
    const origins = ['https://a.example', 'https://b.example'];
    const config = resolveConfig({ origins }, 1);
    expect(config.origins).toEqual(origins);
    origins.push('https://evil.example');
    expect(config.origins).toHaveLength(2);
    expect(resolveConfig({ origins: [] }, 1).origins).toEqual([]);
    expect(() => resolve({ origins: 'https://a.example' })).toThrow('option origins must be an array of strings');
    expect(() => resolve({ origins: ['https://a.example', 5] })).toThrow(TypeError);
  });
});

describe('resolveConfig across options', () => {
  it('points a renamed option to its replacement', () => {
    expect(() => resolve({ workerYoungGenerationMb: 16 })).toThrow(TypeError);
    expect(() => resolve({ workerYoungGenerationMb: 16 })).toThrow(
      'option workerYoungGenerationMb was replaced by workerYoungGenerationSize (bytes, e.g. 16 * 1024 * 1024)',
    );
  });

  it('refuses a low-water mark above the high-water mark (equal is fine)', () => {
    expect(() => resolveConfig({ highWaterMark: 1000, lowWaterMark: 1001 }, 1)).toThrow(RangeError);
    expect(() => resolveConfig({ highWaterMark: 1000, lowWaterMark: 1001 }, 1)).toThrow('option lowWaterMark must not exceed highWaterMark');
    // Against the other's default too.
    expect(() => resolveConfig({ lowWaterMark: 128 * 1024 }, 1)).toThrow('option lowWaterMark must not exceed highWaterMark');
    expect(resolveConfig({ highWaterMark: 1000, lowWaterMark: 1000 }, 1)).toMatchObject({ highWaterMark: 1000, lowWaterMark: 1000 });
  });

  it('refuses maxBackpressure below the high-water mark (equal is fine)', () => {
    expect(() => resolveConfig({ highWaterMark: 2000, lowWaterMark: 0, maxBackpressure: 1999 }, 1)).toThrow(RangeError);
    expect(() => resolveConfig({ highWaterMark: 2000, lowWaterMark: 0, maxBackpressure: 1999 }, 1)).toThrow('option maxBackpressure must be at least highWaterMark');
    expect(() => resolveConfig({ highWaterMark: 8 * 1024 * 1024 }, 1)).toThrow('option maxBackpressure must be at least highWaterMark');
    expect(resolveConfig({ highWaterMark: 2000, lowWaterMark: 0, maxBackpressure: 2000 }, 1)).toMatchObject({ maxBackpressure: 2000 });
  });
});

describe('resolveConfig appOptions', () => {
  it('passes plain data through, as given, and nothing by default', () => {
    expect(resolveConfig({}, 1).appOptions).toBeUndefined();
    const appOptions = { greeting: 'hi', limits: [1, 2], at: new Date(0), bytes: new Uint8Array([1]) };
    expect(resolveConfig({ appOptions }, 1).appOptions).toBe(appOptions);
  });

  it('refuses what cannot cross to a worker (a function, a socket, a class with methods is copied as data)', () => {
    expect(() => resolveConfig({ appOptions: { onMessage: () => 1 } }, 1)).toThrow(TypeError);
    expect(() => resolveConfig({ appOptions: { onMessage: () => 1 } }, 1)).toThrow(/^option appOptions must be plain data \(what structuredClone copies\): /);
  });
});

describe('DEFLATE_OPTIONS', () => {
  it("holds the defaults of every deflate field (the shared preset's), the preset aside", () => {
    const { preset, ...fields } = DEFLATE_DEFAULTS;
    expect(preset).toBe('shared');
    expect(Object.fromEntries(Object.entries(DEFLATE_OPTIONS).map(([name, spec]) => [name, spec.default]))).toEqual(fields);
  });

  it('names the preset as the default of the fields a preset sets', () => {
    const byPreset = Object.entries(DEFLATE_OPTIONS).filter(([, spec]) => spec.doc.includes("(default: the preset's)")).map(([name]) => name);
    const presetFields = new Set(Object.values(DEFLATE_PRESETS).flatMap((preset) => Object.keys(preset).filter((name) => preset[name as keyof typeof preset] !== DEFLATE_PRESETS.shared[name as keyof typeof preset])));
    expect(byPreset.sort()).toEqual([...presetFields].sort());
  });
});

describe('resolveConfig deflate', () => {
  it('is off unless asked for', () => {
    expect(resolveConfig({}, 1).deflate).toBeNull();
    expect(resolveConfig({ deflate: false }, 1).deflate).toBeNull();
  });

  it('true means the shared preset with the defaults', () => {
    expect(resolveConfig({ deflate: true }, 1).deflate).toEqual(DEFLATE_DEFAULTS);
    expect(DEFLATE_DEFAULTS).toEqual({
      preset: 'shared',
      compressor: 'shared',
      decompressor: 'shared',
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
      threshold: 128,
      level: 1,
      memLevel: 8,
    });
  });

  it('a preset name picks the preset, with the other defaults', () => {
    expect(resolveConfig({ deflate: 'shared' }, 1).deflate).toEqual(DEFLATE_DEFAULTS);
    expect(resolveConfig({ deflate: 'dedicated' }, 1).deflate).toEqual({ ...DEFLATE_DEFAULTS, preset: 'dedicated', compressor: 'dedicated', decompressor: 'dedicated' });
    expect(resolveConfig({ deflate: 'dedicated-compressor' }, 1).deflate).toEqual({ ...DEFLATE_DEFAULTS, preset: 'dedicated-compressor', compressor: 'dedicated' });
    expect(resolveConfig({ deflate: 'dedicated-compressor-small' }, 1).deflate).toEqual({
      ...DEFLATE_DEFAULTS,
      preset: 'dedicated-compressor-small',
      compressor: 'dedicated',
      serverMaxWindowBits: 9,
      memLevel: 2,
    });
    for (const [name, preset] of Object.entries(DEFLATE_PRESETS)) expect(resolveConfig({ deflate: name as DeflatePreset }, 1).deflate).toMatchObject(preset);
  });

  it('an object starts from its preset (mode, the old name, too) and overrides what it names', () => {
    const deflate = resolveConfig({ deflate: { level: 9, threshold: 0, serverMaxWindowBits: 10 } }, 1).deflate;
    expect(deflate).toEqual({ ...DEFLATE_DEFAULTS, threshold: 0, level: 9, serverMaxWindowBits: 10 });
    expect(resolveConfig({ deflate: {} }, 1).deflate).toEqual(DEFLATE_DEFAULTS);
    expect(resolveConfig({ deflate: { mode: 'dedicated', memLevel: 9 } }, 1).deflate).toEqual({
      ...DEFLATE_DEFAULTS,
      preset: 'dedicated',
      compressor: 'dedicated',
      decompressor: 'dedicated',
      memLevel: 9,
    });
    expect(resolveConfig({ deflate: { preset: 'dedicated', decompressor: 'shared', clientMaxWindowBits: 12 } }, 1).deflate).toMatchObject({
      compressor: 'dedicated',
      decompressor: 'shared',
      clientMaxWindowBits: 12,
    });
  });

  it("takes ws's names: *NoContextTakeover true is the shared side, false the dedicated one", () => {
    expect(resolveConfig({ deflate: { serverNoContextTakeover: false, clientNoContextTakeover: true } }, 1).deflate).toMatchObject({
      compressor: 'dedicated',
      decompressor: 'shared',
    });
    expect(resolveConfig({ deflate: { preset: 'dedicated', serverNoContextTakeover: true } }, 1).deflate).toMatchObject({
      compressor: 'shared',
      decompressor: 'dedicated',
    });
    // Both names, agreeing, are fine.
    expect(resolveConfig({ deflate: { compressor: 'shared', serverNoContextTakeover: true } }, 1).deflate!.compressor).toBe('shared');
  });

  it.each([
    [{ deflate: 'fast' }, 'option deflate.preset must be one of shared, dedicated, dedicated-compressor, dedicated-compressor-small, got fast'],
    [{ deflate: { mode: 'none' } }, 'option deflate.preset must be one of shared, dedicated'],
    [{ deflate: { preset: 'dedicated', mode: 'dedicated' } }, 'option deflate takes preset or its old name mode, not both'],
    [{ deflate: { compressor: 'per-connection' } }, 'option deflate.compressor must be one of shared, dedicated, got per-connection'],
    [{ deflate: { compressor: 'dedicated', serverNoContextTakeover: true } }, "option deflate.compressor 'dedicated' contradicts deflate.serverNoContextTakeover: true"],
    [{ deflate: { decompressor: 'shared', clientNoContextTakeover: false } }, "option deflate.decompressor 'shared' contradicts deflate.clientNoContextTakeover: false"],
    [{ deflate: { serverNoContextTakeover: 'yes' } }, 'option deflate.serverNoContextTakeover must be true or false, got yes'],
    [{ deflate: { serverMaxWindowbits: 10 } }, 'option deflate has no field serverMaxWindowbits'],
    [{ deflate: 7 }, 'option deflate must be true, false, a preset name or an object, got 7'],
    [{ deflate: { level: 10 } }, 'option deflate.level must be an integer from 0 to 9, got 10'],
    [{ deflate: { level: -1 } }, 'option deflate.level must be an integer from 0 to 9, got -1'],
    [{ deflate: { memLevel: 0 } }, 'option deflate.memLevel must be an integer from 1 to 9, got 0'],
    [{ deflate: { serverMaxWindowBits: 7 } }, 'option deflate.serverMaxWindowBits must be an integer from 8 to 15, got 7'],
    [{ deflate: { serverMaxWindowBits: 16 } }, 'option deflate.serverMaxWindowBits must be an integer from 8 to 15, got 16'],
    [{ deflate: { clientMaxWindowBits: 12.5 } }, 'option deflate.clientMaxWindowBits must be an integer from 8 to 15, got 12.5'],
    [{ deflate: { threshold: -1 } }, 'option deflate.threshold must be an integer from 0'],
    [{ deflate: { threshold: 1.5 } }, 'option deflate.threshold must be an integer from 0'],
  ])('refuses %j', (options, message) => {
    expect(() => resolve(options)).toThrow(message);
  });
});

describe('resolveConfig tls', () => {
  it('is off without the option', () => {
    expect(resolveConfig({}, 1).tls).toBeNull();
  });

  it('takes PEM text or files, copied', () => {
    const pem = { cert: 'CERT', key: 'KEY', ca: 'CA', passphrase: 'pw' };
    const config = resolveConfig({ tls: pem }, 1);
    expect(config.tls).toEqual(pem);
    expect(config.tls).not.toBe(pem);
    expect(resolveConfig({ tls: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' } }, 1).tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' });
    // One of each, mixed.
    expect(resolveConfig({ tls: { cert: 'CERT', keyFile: 'k.pem' } }, 1).tls).toEqual({ cert: 'CERT', keyFile: 'k.pem' });
  });

  it.each([
    [{}, 'option tls needs exactly one of cert (PEM) or certFile'],
    [{ key: 'KEY' }, 'option tls needs exactly one of cert (PEM) or certFile'],
    [{ cert: 'CERT', certFile: 'c.pem', key: 'KEY' }, 'option tls needs exactly one of cert (PEM) or certFile'],
    [{ cert: 'CERT' }, 'option tls needs exactly one of key (PEM) or keyFile'],
    [{ certFile: 'c.pem', key: 'KEY', keyFile: 'k.pem' }, 'option tls needs exactly one of key (PEM) or keyFile'],
  ])('refuses tls %j', (tls, message) => {
    expect(() => resolve({ tls })).toThrow(TypeError);
    expect(() => resolve({ tls })).toThrow(message);
  });
});
