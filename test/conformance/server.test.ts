/**
 * Our server against the fuzzing client: every case of groups 1–7, 9, 10, 12, 13 and M (ours) in
 * every delivery mode, with permessage-deflate in shared mode; then groups 12 and 13 again in
 * dedicated mode. Prints a summary by group; any FAILED (or UNCLEAN, WRONG CODE…) fails the test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../../src/main/listen.ts';
import type { ShardServer } from '../../src/main/listen.ts';
import { allCases } from './cases/index.ts';
import type { FuzzTarget } from './fuzzing-client.ts';
import { fuzzServer } from './fuzzing-client.ts';
import type { Delivery, FuzzingCase } from './fuzzing-case.ts';
import { deliveriesOf, groupOf } from './fuzzing-case.ts';
import type { Verdict } from './judge.ts';
import { passed, summaryTable } from './judge.ts';
import { runPool } from './run-pool.ts';

const GROUPS = ['1', 'M', '2', '3', '4', '5', '6', '7', '9', '10', '12', '13'];
const CONCURRENCY = 8;

const failures = (verdicts: readonly Verdict[]): string[] =>
  verdicts.filter((v) => !passed(v)).map((v) => `${v.id} [${v.delivery}] ${v.behavior}/${v.behaviorClose}: ${v.result} / ${v.resultClose}`);

async function runGroup(target: FuzzTarget, cases: readonly FuzzingCase[]): Promise<Verdict[]> {
  const runs = cases.flatMap((kase) => deliveriesOf(kase).map((delivery): [FuzzingCase, Delivery] => [kase, delivery]));
  return runPool(runs, CONCURRENCY, ([kase, delivery]) => fuzzServer(target, kase, delivery));
}

describe.each([
  { deflate: 'shared' as const, groups: GROUPS },
  { deflate: 'dedicated' as const, groups: ['12', '13'] },
])('conformance: server with deflate $deflate', ({ deflate, groups }) => {
  let server: ShardServer;
  let target: FuzzTarget;
  const verdicts: Verdict[] = [];
  const cases = allCases();

  beforeAll(async () => {
    server = await listen({ port: 0, host: '127.0.0.1', workers: 2, deflate, logLevel: 'silent', shutdownGrace: 1 });
    target = { host: '127.0.0.1', port: server.address().port, path: '/echo' };
  });
  afterAll(async () => {
    console.log(summaryTable(`Server conformance (deflate ${deflate}): runs by group`, verdicts));
    await server?.close();
  });

  it.each(groups)('group %s', async (group) => {
    const results = await runGroup(
      target,
      cases.filter((c) => groupOf(c.id) === group),
    );
    verdicts.push(...results);
    expect(results.length).toBeGreaterThan(0);
    expect(failures(results)).toEqual([]);
  }, 90_000);
});
