/**
 * The judge turns what a fuzzer observed into Autobahn's two verdicts per case: `behavior` (did
 * the peer produce an expected sequence of events) and `behaviorClose` (did the connection end the
 * way the case requires), with Autobahn's meanings:
 * - behavior: the first outcome (OK, NON-STRICT) whose events match exactly, else FAILED;
 * - behaviorClose: FAILED when the wrong side started closing, UNCLEAN when a required closing
 *   handshake did not complete, WRONG CODE for a close code outside the case's set, FAILED BY
 *   CLIENT when a server left TCP open after the closing handshake so the client had to drop it;
 *   OK otherwise.
 * Stricter than Autobahn in one way: a peer that broke the protocol on the wire (a bad frame, an
 * invalid close payload, invalid UTF-8 in text) fails the case whatever its events.
 */
import type { FuzzerRole, Observation } from './case-session.ts';
import type { Behavior, Delivery, FuzzingCase } from './fuzzing-case.ts';
import { PASSING, groupOf, sameEvents } from './fuzzing-case.ts';

export interface Verdict {
  readonly id: string;
  readonly group: string;
  readonly description: string;
  readonly delivery: Delivery;
  readonly behavior: Behavior;
  readonly behaviorClose: Behavior;
  readonly result: string;
  readonly resultClose: string;
  readonly remoteCloseCode: number | null;
  readonly durationMs: number;
}

export function judge(kase: FuzzingCase, delivery: Delivery, role: FuzzerRole, obs: Observation): Verdict {
  const base = { id: kase.id, group: groupOf(kase.id), description: kase.description, delivery, remoteCloseCode: obs.remoteCloseCode, durationMs: Math.round(obs.durationMs) };
  const close = kase.kind === 'scripted' ? kase.close : { closedByMe: true, codes: [1000], requireClean: true };

  let behavior: Behavior = 'FAILED';
  let result = 'Actual events differ from any expected.';
  if (kase.kind === 'echo') {
    behavior = obs.echo?.behavior ?? 'FAILED';
    result = obs.echo?.result ?? 'no echo verdict';
  } else {
    for (const name of ['OK', 'NON-STRICT'] as const) {
      const expected = kase.outcomes[name];
      if (expected !== undefined && sameEvents(obs.events, expected)) {
        behavior = name;
        result = 'Actual events match at least one expected.';
        break;
      }
    }
    if (behavior === 'FAILED') result += ` Got: ${describeEvents(obs)}`;
  }

  let behaviorClose: Behavior = 'OK';
  let resultClose = `Connection was properly closed${obs.tcpCloseMs === null ? '' : ` (TCP ${Math.round(obs.tcpCloseMs)} ms after the closing handshake)`}`;
  if (close.closedByMe !== obs.closedByMe) {
    behaviorClose = 'FAILED';
    resultClose = 'The connection was failed by the wrong endpoint';
  } else if (close.requireClean && !obs.wasClean) {
    behaviorClose = 'UNCLEAN';
    resultClose = 'The spec requires the connection to be failed cleanly here';
  } else if (obs.remoteCloseCode !== null && !close.codes.includes(obs.remoteCloseCode)) {
    behaviorClose = 'WRONG CODE';
    resultClose = `The close code should have been ${close.codes.join(',')} or empty, got ${obs.remoteCloseCode}`;
  } else if (role === 'client' && obs.droppedByMe) {
    behaviorClose = 'FAILED BY CLIENT';
    resultClose = 'It is preferred that the server close the TCP connection';
  }

  if (kase.kind === 'scripted' && kase.wrongCodeFails === true && behaviorClose === 'WRONG CODE') {
    behavior = 'FAILED';
    result = resultClose;
  }
  if (kase.kind === 'scripted' && kase.informational === true) {
    result = `${behavior === 'OK' ? 'Processed everything before the close' : 'Closed before processing everything'} (${result})`;
    behavior = 'INFORMATIONAL';
    behaviorClose = 'INFORMATIONAL';
  }
  // Even where the spec leaves the outcome open, what goes on the wire must be valid.
  if (obs.violation !== null) {
    behavior = 'FAILED';
    result = `The peer violated the protocol: ${obs.violation}`;
  }
  return { ...base, behavior, behaviorClose, result, resultClose };
}

/** The verdict on a run whose opening handshake failed: nothing else could be tested. */
export function handshakeFailure(kase: FuzzingCase, delivery: Delivery, error: Error): Verdict {
  return {
    id: kase.id,
    group: groupOf(kase.id),
    description: kase.description,
    delivery,
    behavior: 'FAILED',
    behaviorClose: 'FAILED',
    result: `Opening handshake failed: ${error.message}`,
    resultClose: 'The WebSocket connection was never open',
    remoteCloseCode: null,
    durationMs: 0,
  };
}

export const passed = (v: Verdict): boolean => PASSING.has(v.behavior) && PASSING.has(v.behaviorClose);

/** The runs that did not pass, one line each, for a test's failure message. */
export const failures = (verdicts: readonly Verdict[]): string[] =>
  verdicts.filter((v) => !passed(v)).map((v) => `${v.id} [${v.delivery}] ${v.behavior}/${v.behaviorClose}: ${v.result} / ${v.resultClose}`);

function describeEvents(obs: Observation): string {
  const shown = obs.events.slice(0, 6).map((e) =>
    e.kind === 'timeout' ? `timeout ${e.marker}` : `${e.kind === 'message' ? (e.binary ? 'binary' : 'text') : e.kind}(${e.data.length} B)`,
  );
  return `[${shown.join(', ')}${obs.events.length > 6 ? ', …' : ''}]`;
}

const COLUMNS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'FAILED'] as const;

/** One row per group: counts of runs by their worse verdict. */
export function summaryTable(title: string, verdicts: readonly Verdict[]): string {
  const groups = new Map<string, Record<(typeof COLUMNS)[number], number>>();
  for (const v of verdicts) {
    const row = groups.get(v.group) ?? { OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 0, FAILED: 0 };
    groups.set(v.group, row);
    row[columnOf(v)]++;
  }
  const order = [...groups.keys()].sort((a, b) => (Number(a) || 1e9) - (Number(b) || 1e9) || a.localeCompare(b));
  const lines = [title, `${'group'.padEnd(7)}${COLUMNS.map((c) => c.padStart(15)).join('')}`];
  const total = { OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 0, FAILED: 0 };
  for (const group of order) {
    const row = groups.get(group)!;
    for (const c of COLUMNS) total[c] += row[c];
    lines.push(`${group.padEnd(7)}${COLUMNS.map((c) => String(row[c]).padStart(15)).join('')}`);
  }
  lines.push(`${'all'.padEnd(7)}${COLUMNS.map((c) => String(total[c]).padStart(15)).join('')}`);
  const notable = verdicts.filter((v) => !passed(v) || v.behavior === 'NON-STRICT');
  for (const v of notable.slice(0, 40)) {
    const why = !PASSING.has(v.behavior) ? v.result : !PASSING.has(v.behaviorClose) ? v.resultClose : v.description;
    lines.push(`  ${v.id} [${v.delivery}] ${v.behavior}/${v.behaviorClose}: ${why}`);
  }
  if (notable.length > 40) lines.push(`  … and ${notable.length - 40} more`);
  return lines.join('\n');
}

function columnOf(v: Verdict): (typeof COLUMNS)[number] {
  if (!passed(v)) return 'FAILED';
  if (v.behavior === 'INFORMATIONAL') return 'INFORMATIONAL';
  if (v.behavior === 'NON-STRICT' || v.behaviorClose === 'NON-STRICT') return 'NON-STRICT';
  return 'OK';
}
