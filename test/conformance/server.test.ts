/**
 * Our server against the fuzzing client: every case of groups 1–7, 9, 10, 12, 13 and M (ours) in
 * every delivery mode, with permessage-deflate in shared mode (group 12 with Autobahn's 1000
 * messages per case); then groups 12 and 13 over every compression setting the server offers
 * (compressor and decompressor shared or dedicated, each window size, the threshold, zlib's
 * level and memLevel); then the echo groups answered with ws.sendFragment. Prints a summary by
 * group; any FAILED (or UNCLEAN, WRONG CODE…) fails the test.
 *
 * Cost on 2 shared cores: ~200 s, of which ~120 s are group 12 at Autobahn's counts. With
 * SHARDWS_CONFORMANCE=full groups 12 and 13 take Autobahn's counts in every run (group 12 alone
 * is ~2 min per setting, so well over an hour); the default keeps `npm test` within its budget.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../../src/main/listen.ts';
import type { ShardServer } from '../../src/main/listen.ts';
import type { DeflateOptions, DeflatePreset } from '../../src/shared/config.ts';
import { allCases } from './cases/index.ts';
import type { MessageCounts } from './cases/compression.ts';
import type { FuzzTarget } from './fuzzing-client.ts';
import { fuzzCases } from './fuzzing-client.ts';
import { groupOf } from './fuzzing-case.ts';
import type { Verdict } from './judge.ts';
import { failures, summaryTable } from './judge.ts';

const GROUPS = ['1', 'M', '2', '3', '4', '5', '6', '7', '9', '10', '12', '13'];
const CONCURRENCY = 8;
const MiB = 1024 * 1024;
const FULL = process.env.SHARDWS_CONFORMANCE === 'full';
/** Group 12 with Autobahn's counts in the main run; everything else bounded unless FULL. */
const countsFor = (group: string, main: boolean): MessageCounts => (FULL || (main && group === '12') ? 'autobahn' : 'bounded');
const ECHO_APP = fileURLToPath(new URL('./echo-app.ts', import.meta.url));

/**
 * The compression settings groups 12 and 13 run over: each side shared and dedicated, every
 * window of each side, the threshold around its default, zlib's level and memLevel, and the
 * presets.
 */
const SETTINGS: readonly (DeflatePreset | DeflateOptions)[] = [
  'dedicated',
  'dedicated-compressor',
  'dedicated-compressor-small',
  { compressor: 'shared', decompressor: 'dedicated' },
  ...([8, 9, 10, 11, 12, 13, 14] as const).map((bits): DeflateOptions => ({ preset: 'dedicated', serverMaxWindowBits: bits })),
  ...([8, 9, 10, 11, 12, 13, 14] as const).map((bits): DeflateOptions => ({ preset: 'dedicated', clientMaxWindowBits: bits })),
  { preset: 'shared', serverMaxWindowBits: 10, clientMaxWindowBits: 12 },
  { preset: 'dedicated', threshold: 0 },
  { preset: 'dedicated', threshold: 4096 },
  { preset: 'shared', level: 9, memLevel: 9 },
  { preset: 'dedicated', level: 0, memLevel: 1 },
];

const label = (deflate: DeflatePreset | DeflateOptions): string => (typeof deflate === 'string' ? deflate : JSON.stringify(deflate));

interface Run {
  readonly name: string;
  readonly deflate: DeflatePreset | DeflateOptions;
  readonly groups: readonly string[];
  /** The main run: the demo app's /echo, group 12 with Autobahn's counts. */
  readonly main: boolean;
  /** Request target: ws.send echoes, or ws.sendFragment pieces. */
  readonly path: string;
}

const RUNS: readonly Run[] = [
  { name: 'deflate shared', deflate: 'shared', groups: GROUPS, main: true, path: '/echo' },
  ...SETTINGS.map((deflate): Run => ({ name: `deflate ${label(deflate)}`, deflate, groups: ['12', '13'], main: false, path: '/echo' })),
  // The streaming send, uncompressed and compressed, judged frame by frame.
  ...(['shared', 'dedicated'] as const).map((deflate): Run => ({ name: `sendFragment, deflate ${deflate}`, deflate, groups: ['1', '9', '12', '13'], main: false, path: '/stream?piece=1000' })),
];

describe.each(RUNS)('conformance: server, $name', ({ name, deflate, groups, main, path }) => {
  let server: ShardServer;
  let target: FuzzTarget;
  const verdicts: Verdict[] = [];

  beforeAll(async () => {
    // The echo app answers group 9's 16 MiB messages in pieces, all queued at once: the default
    // maxBackpressure (4 MiB) would close it as a slow client mid-message.
    const limits = main ? {} : { maxBackpressure: 64 * MiB };
    server = await listen({ app: main ? undefined : ECHO_APP, port: 0, host: '127.0.0.1', workers: 2, deflate, logLevel: 'silent', shutdownGrace: 1, ...limits });
    target = { host: '127.0.0.1', port: server.address().port, path };
  });
  afterAll(async () => {
    console.log(summaryTable(`Server conformance (${name}): runs by group`, verdicts));
    await server?.close();
  });

  it.each(groups)('group %s', async (group) => {
    const results = await fuzzCases(target, allCases(countsFor(group, main)).filter((c) => groupOf(c.id) === group), CONCURRENCY);
    verdicts.push(...results);
    expect(results.length).toBeGreaterThan(0);
    expect(failures(results)).toEqual([]);
  }, FULL ? 7_200_000 : 600_000);
});
