/** Group 5, fragmentation (RFC 6455 §5.4): continuation rules, control frames between fragments. */
import type { FuzzingCase, Step } from '../fuzzing-case.ts';
import { echoThenFail, failing, frame, pong, scripted, text, wait } from '../fuzzing-case.ts';

type Writes = 'one chop' | 'frame-wise' | 'octet-wise';
/** Autobahn runs several cases three times: default writes, sync writes per frame, octet-wise chops. */
const WRITES: readonly Writes[] = ['one chop', 'frame-wise', 'octet-wise'];
const chopFor = (writes: Writes): { chop?: number } => (writes === 'octet-wise' ? { chop: 1 } : {});

const F1 = 'fragment1';
const F2 = 'fragment2';

function controlFragmented(id: string, opcode: number, name: string): FuzzingCase {
  return failing(id, `Send ${name} fragmented into 2 fragments: control frames must not be fragmented.`, [
    frame(opcode, F1, { fin: false }),
    frame(0, F2),
  ]);
}

function twoFragments(id: string, writes: Writes): FuzzingCase {
  return scripted({
    id,
    description: `Send text message fragmented into 2 fragments, ${writes} writes.`,
    steps: [frame(1, F1, { fin: false, ...chopFor(writes) }), frame(0, F2, chopFor(writes))],
    outcomes: { OK: [text(F1 + F2)] },
    end: { close: 1000 },
  });
}

function pingBetween(id: string, writes: Writes): FuzzingCase {
  return scripted({
    id,
    description: `Send text message in 2 fragments with a ping in between, ${writes} writes.`,
    steps: [frame(1, F1, { fin: false, ...chopFor(writes) }), frame(9, 'ping payload', chopFor(writes)), frame(0, F2, chopFor(writes))],
    outcomes: { OK: [pong('ping payload'), text(F1 + F2)] },
    end: { close: 1000 },
  });
}

function nothingToContinue(id: string, fin: boolean, writes: Writes): FuzzingCase {
  return failing(id, `Send continuation frame with FIN = ${fin} where there is nothing to continue, then a text message; ${writes} writes.`, [
    frame(0, 'non-continuation payload', { fin, ...chopFor(writes) }),
    frame(1, 'Hello, world!', chopFor(writes)),
  ]);
}

function repeatedNothingToContinue(id: string, fin: boolean): FuzzingCase {
  const round: Step[] = [frame(0, F1, { fin }), frame(1, F2, { fin: false }), frame(0, 'fragment3')];
  return failing(id, `Twice: continuation frame with FIN = ${fin} where there is nothing to continue, then a text message in 2 fragments.`, [
    ...round,
    ...round,
  ]);
}

/** 5.19/5.20: a message in 5 fragments, pings after the 2nd and 4th, a pause in the middle. */
function slowFragments(id: string, description: string): FuzzingCase {
  const parts = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'];
  return scripted({
    id,
    description,
    steps: [
      frame(1, parts[0], { fin: false }),
      frame(0, parts[1], { fin: false }),
      frame(9, 'pongme 1!'),
      // Autobahn waits 1 s; the pong must come before the message is complete, which a shorter pause shows as well.
      wait(100),
      frame(0, parts[2], { fin: false }),
      frame(0, parts[3], { fin: false }),
      frame(9, 'pongme 2!'),
      frame(0, parts[4]),
    ],
    outcomes: { OK: [pong('pongme 1!'), pong('pongme 2!'), text(parts.join(''))] },
    end: { close: 1000 },
  });
}

export const fragmentationCases: readonly FuzzingCase[] = [
  controlFragmented('5.1', 9, 'ping'),
  controlFragmented('5.2', 10, 'pong'),
  ...WRITES.map((w, i) => twoFragments(`5.${3 + i}`, w)),
  ...WRITES.map((w, i) => pingBetween(`5.${6 + i}`, w)),
  ...WRITES.map((w, i) => nothingToContinue(`5.${9 + i}`, true, w)),
  ...WRITES.map((w, i) => nothingToContinue(`5.${12 + i}`, false, w)),
  echoThenFail('5.15', 'Send text message in 2 fragments, then a continuation with FIN = false where there is nothing to continue, then a text message.', text(F1 + F2), [
    frame(1, F1, { fin: false }),
    frame(0, F2),
    frame(0, 'fragment3', { fin: false }),
    frame(1, 'fragment4'),
  ]),
  repeatedNothingToContinue('5.16', false),
  repeatedNothingToContinue('5.17', true),
  failing('5.18', 'Send text message in 2 fragments, both with the text opcode.', [frame(1, F1, { fin: false }), frame(1, F2)]),
  slowFragments('5.19', 'A text message in 5 fragments, a ping after the 2nd and after the 4th, a pause in between.'),
  slowFragments('5.20', 'Same as 5.19, each frame written on its own (Autobahn: sync).'),
];
