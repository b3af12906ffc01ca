/**
 * The fuzzing client: plays Autobahn's fuzzingclient against a WebSocket server. For each case it
 * opens a raw TCP connection, does the opening handshake itself (with our handshake helpers,
 * offering permessage-deflate when the case wants it), runs the case with masked frames built
 * by our encoder, and hands what it saw to the judge.
 */
import { connect } from 'node:net';
import { parseExtensionHeader } from '../../src/shared/extension-header.ts';
import { buildUpgradeRequest, generateKey, validateUpgradeResponse } from '../../src/shared/handshake.ts';
import type { DeflateOfferOptions, DeflateParams } from '../../src/shared/permessage-deflate.ts';
import { PerMessageDeflate, acceptDeflateResponse, buildDeflateOffer } from '../../src/shared/permessage-deflate.ts';
import { CaseSession } from './case-session.ts';
import type { Delivery, FuzzingCase } from './fuzzing-case.ts';
import { deliveriesOf } from './fuzzing-case.ts';
import { readHead } from './http-head.ts';
import type { Verdict } from './judge.ts';
import { handshakeFailure, judge } from './judge.ts';
import { runPool } from './run-pool.ts';

export interface FuzzTarget {
  readonly host: string;
  readonly port: number;
  /** Request target of the echo endpoint, e.g. "/echo". */
  readonly path: string;
}

/** Largest message the fuzzer accepts back (above every case). */
const MAX_MESSAGE = 64 * 1024 * 1024;

/** Runs `cases` in each of their deliveries against `target`, `concurrency` at a time. */
export function fuzzCases(target: FuzzTarget, cases: readonly FuzzingCase[], concurrency: number): Promise<Verdict[]> {
  const runs = cases.flatMap((kase) => deliveriesOf(kase).map((delivery): [FuzzingCase, Delivery] => [kase, delivery]));
  return runPool(runs, concurrency, ([kase, delivery]) => fuzzServer(target, kase, delivery));
}

/** Runs one case against the server at `target` and judges it. */
export async function fuzzServer(target: FuzzTarget, kase: FuzzingCase, delivery: Delivery): Promise<Verdict> {
  const socket = connect({ host: target.host, port: target.port, allowHalfOpen: true });
  socket.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const offers = kase.kind === 'echo' ? (kase.deflate?.offers ?? []) : [];
    const key = generateKey();
    socket.write(
      buildUpgradeRequest({
        host: `${target.host}:${target.port}`,
        path: target.path,
        key,
        extensions: offers.length > 0 ? offers.map((o) => buildDeflateOffer(o)).join(', ') : undefined,
      }),
      'latin1',
    );
    const head = await readHead(socket);
    const status = Number(head.startLine.split(' ')[1]);
    validateUpgradeResponse({ statusCode: status, headers: head.headers }, { key, protocols: [] });
    let codec: PerMessageDeflate | null = null;
    const answer = head.headers['sec-websocket-extensions'];
    if (answer !== undefined) {
      if (offers.length === 0) throw new Error(`server answered extensions that were not offered: ${answer}`);
      codec = new PerMessageDeflate('client', negotiated(answer, offers), { maxMessageSize: MAX_MESSAGE, threshold: 0 });
    }
    try {
      const observation = await new CaseSession(socket, { role: 'client', delivery, codec }).run(kase, head.rest);
      return judge(kase, delivery, 'client', observation);
    } finally {
      codec?.close();
    }
  } catch (error) {
    socket.destroy();
    return handshakeFailure(kase, delivery, error as Error);
  }
}

/** The offer the server's answer belongs to (the first it is a valid answer for), as params. */
function negotiated(answer: string, offers: readonly DeflateOfferOptions[]): DeflateParams {
  const elements = parseExtensionHeader(answer);
  let lastError: unknown;
  for (const offer of offers) {
    try {
      return acceptDeflateResponse(elements, offer);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}
