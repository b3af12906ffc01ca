/**
 * bench:addressing runs end to end with tiny numbers (its rates are for a quiet machine, not
 * checked here): every message of every row is delivered, across workers and, with a real
 * redis-server, across servers.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer, hasRedisServer } from './support/redis-server.ts';

const RUN = fileURLToPath(new URL('../bench/addressing/run.ts', import.meta.url));
const bench = (...args: string[]) => spawnSync(process.execPath, [RUN, '--workers', '2', '--receivers', '8', '--keys', '4', '--messages', '400', ...args], { encoding: 'utf8', timeout: 60_000 });
const rows = (stdout: string): string[][] => stdout.split('\n').filter((line) => /^\| send/.test(line)).map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));

describe('bench:addressing', () => {
  it('measures send(id) and sendTo(key) across workers, every message delivered', () => {
    const result = bench();
    expect(result.status, result.stderr).toBe(0);
    const table = rows(result.stdout);
    expect(table.map(([call, scope]) => [call, scope])).toEqual([
      ['send(id)', 'across workers (2)'],
      ['sendTo(key)', 'across workers (2)'],
    ]);
    for (const row of table) expect(Number(row[4])).toBeGreaterThan(0);
  });

  describe.skipIf(!hasRedisServer && process.env.CI !== 'true')('with --redis (needs redis-server)', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await RedisServer.launch();
    });
    afterAll(() => redis.stop());

    it('adds the rows across servers', () => {
      const result = bench('--redis', redis.url);
      expect(result.status, result.stderr).toBe(0);
      expect(rows(result.stdout).map(([call, scope]) => `${call} ${scope}`)).toEqual([
        'send(id) across workers (2)',
        'sendTo(key) across workers (2)',
        'send(id) across servers (Redis)',
        'sendTo(key) across servers (Redis)',
      ]);
    });
  });
});
