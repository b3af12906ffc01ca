/**
 * The gateway under the fuzzing client: client → `shardws proxy` → a ws echo server, in message
 * mode (our codec and permessage-deflate on the client's leg, plain messages upstream) and in
 * passthrough (bytes copied; the upstream answers the handshake and every frame). Groups 1–7,
 * 9, 10, 12, 13 and M, every delivery; any FAILED (or UNCLEAN, WRONG CODE…) fails the test.
 * Echoes take a round trip upstream, so a case that sends a message and then breaks the
 * protocol may see the failure before the echo: Autobahn calls that NON-STRICT, and so do we.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { listen } from '../../src/main/listen.ts';
import type { ShardServer } from '../../src/main/listen.ts';
import { allCases } from './cases/index.ts';
import type { FuzzTarget } from './fuzzing-client.ts';
import { fuzzCases } from './fuzzing-client.ts';
import { groupOf } from './fuzzing-case.ts';
import type { Verdict } from './judge.ts';
import { failures, summaryTable } from './judge.ts';

const GROUPS = ['1', 'M', '2', '3', '4', '5', '6', '7', '9', '10', '12', '13'];
const CONCURRENCY = 8;

describe.each(['message', 'passthrough'] as const)('conformance: gateway in %s mode, ws upstream', (mode) => {
  let upstream: WebSocketServer;
  let gateway: ShardServer;
  let target: FuzzTarget;
  const verdicts: Verdict[] = [];

  beforeAll(async () => {
    // In passthrough ws reads the client's frames itself: its default limit of 16384 fragments
    // a message would fail 9.3.1 and 9.4.1 (65,536 fragments) with 1008, its policy, not ours.
    upstream = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: mode === 'passthrough', maxPayload: 64 * 1024 * 1024, maxFragments: 0 });
    await new Promise<void>((resolve) => upstream.once('listening', () => resolve()));
    upstream.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.on('message', (data: Buffer, isBinary) => ws.send(data, { binary: isBinary }));
    });
    const url = `ws://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gateway = await listen({ proxy: { url, mode }, port: 0, host: '127.0.0.1', workers: 2, deflate: 'shared', logLevel: 'silent', shutdownGrace: 1 });
    target = { host: '127.0.0.1', port: gateway.address().port, path: '/echo' };
  });
  afterAll(async () => {
    console.log(summaryTable(`Gateway conformance (${mode} mode): runs by group`, verdicts));
    await gateway?.close();
    for (const ws of upstream?.clients ?? []) ws.terminate();
    await new Promise<void>((resolve) => (upstream === undefined ? resolve() : upstream.close(() => resolve())));
  });

  it.each(GROUPS)('group %s', async (group) => {
    const results = await fuzzCases(target, allCases().filter((c) => groupOf(c.id) === group), CONCURRENCY);
    verdicts.push(...results);
    expect(results.length).toBeGreaterThan(0);
    expect(failures(results)).toEqual([]);
  }, 120_000);
});
