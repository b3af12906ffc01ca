import { describe, expect, it } from 'vitest';
import { UsageError, byteSize, decimal, joinNegativeValues, wholeNumber } from '../../src/runtime/cli-args.ts';

describe('wholeNumber', () => {
  it.each([
    ['0', 0],
    ['8080', 8080],
    ['007', 7],
    ['9007199254740991', Number.MAX_SAFE_INTEGER],
  ])('reads %j as %i', (value, expected) => {
    expect(wholeNumber('port', value)).toBe(expected);
  });

  it.each(['', '-5', '+5', '1.5', '1e3', ' 8', '8 ', 'abc', '0x10', '12a'])('refuses %j with a usage error naming the flag', (value) => {
    expect(() => wholeNumber('port', value)).toThrow(UsageError);
    expect(() => wholeNumber('port', value)).toThrow(`--port must be a whole number, got "${value}"`);
  });
});

describe('decimal', () => {
  it.each([
    ['0', 0],
    ['10', 10],
    ['0.25', 0.25],
    ['.5', 0.5],
    ['1e2', 100],
  ])('reads %j as %d', (value, expected) => {
    expect(decimal('idle-timeout', value)).toBe(expected);
  });

  it.each(['', '  ', '-1', '-0.5', 'abc', 'Infinity', 'NaN', '1s'])('refuses %j with a usage error naming the flag', (value) => {
    expect(() => decimal('idle-timeout', value)).toThrow(UsageError);
    expect(() => decimal('idle-timeout', value)).toThrow(`--idle-timeout must be a number >= 0, got "${value}"`);
  });
});

describe('byteSize', () => {
  it.each([
    ['0', 0],
    ['65536', 65536],
    ['64K', 64 * 1024],
    ['64k', 64 * 1024],
    ['64KB', 64 * 1024],
    ['64KiB', 64 * 1024],
    ['64kib', 64 * 1024],
    ['16M', 16 * 1024 ** 2],
    ['16MiB', 16 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['2g', 2 * 1024 ** 3],
    ['512B', 512],
    ['4 M', 4 * 1024 ** 2],
    [' 8K ', 8 * 1024],
  ])('reads %j as %i bytes', (value, expected) => {
    expect(byteSize('max-payload', value)).toBe(expected);
  });

  it.each(['', 'K', '-1', '1.5M', '16T', '16MM', 'sixteen', '16 MB extra', '0x100', '512iB'])('refuses %j with a usage error naming the flag', (value) => {
    expect(() => byteSize('max-payload', value)).toThrow(UsageError);
    expect(() => byteSize('max-payload', value)).toThrow(`--max-payload must be a size in bytes (e.g. 65536, 64K, 16M), got "${value}"`);
  });
});

describe('joinNegativeValues', () => {
  const takesValue = (flag: string): boolean => flag === 'port' || flag === 'idle-timeout';

  it('joins a negative number to the flag before it when that flag takes a value', () => {
    expect(joinNegativeValues(['--port', '-5', '--idle-timeout', '-1.5'], takesValue)).toEqual(['--port=-5', '--idle-timeout=-1.5']);
  });

  it('leaves everything else as it is', () => {
    const args = [
      'app.ts',
      '--port', '8080', // positive value
      '--send-pings', '-5', // flag without a value
      '--idle-timeout=-1', // already joined
      '--port', '-x', // not a number: parseArgs reports it
      '-h',
    ];
    expect(joinNegativeValues(args, takesValue)).toEqual(args);
  });

  it('leaves a trailing flag alone and does not mutate its input', () => {
    const args = Object.freeze(['--port']);
    expect(joinNegativeValues(args, takesValue)).toEqual(['--port']);
    expect(joinNegativeValues([], takesValue)).toEqual([]);
  });

  it('asks about the flag name without its dashes', () => {
    const asked: string[] = [];
    joinNegativeValues(['--workers', '-2', 'x'], (flag) => {
      asked.push(flag);
      return true;
    });
    expect(asked).toEqual(['workers']);
  });
});
