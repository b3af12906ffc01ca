/**
 * Reading command-line values, the same way for `shardws serve` and `shardws bench`: one
 * message style for a bad value (`--port must be a whole number, got "abc"`), and the
 * conversions both commands need.
 */

/** A bad command line: one line on stderr and exit code 2. */
export class UsageError extends Error {}

/** A whole number (digits only). */
export function wholeNumber(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a whole number, got "${value}"`);
  return Number(value);
}

/** A number >= 0, fractions allowed (seconds, ratios). */
export function decimal(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`--${flag} must be a number >= 0, got "${value}"`);
  return n;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size in bytes: digits with an optional binary suffix (16K, 4M, 1G, 16KiB, 64B; case-insensitive). */
export function byteSize(flag: string, value: string): number {
  const match = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(value.trim());
  if (match === null) throw new UsageError(`--${flag} must be a size in bytes (e.g. 65536, 64K, 16M), got "${value}"`);
  return Number(match[1]) * SIZE_UNITS[(match[2] ?? '').toLowerCase()]!;
}

/**
 * Joins `--flag -5` into `--flag=-5` for flags that take a value, so a negative number reaches
 * the value check ("must be a whole number") instead of util.parseArgs's "argument is ambiguous".
 */
export function joinNegativeValues(args: readonly string[], takesValue: (flag: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && takesValue(arg.slice(2)) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
