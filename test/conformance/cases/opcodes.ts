/** Group 4, reserved opcodes 3–7 and 11–15 fail the connection (RFC 6455 §5.2). */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { echoThenFail, failing, frame, text } from '../fuzzing-case.ts';

const HELLO = 'Hello, world!';

function opcodeCases(sub: 1 | 2, base: number, kind: string): FuzzingCase[] {
  const id = (n: number): string => `4.${sub}.${n}`;
  return [
    failing(id(1), `Send frame with reserved ${kind} opcode ${base}.`, [frame(base)]),
    failing(id(2), `Send frame with reserved ${kind} opcode ${base + 1} and non-empty payload.`, [frame(base + 1, 'reserved opcode payload')]),
    echoThenFail(id(3), `Send small text message, then reserved ${kind} opcode ${base + 2}, then a ping.`, text(HELLO), [
      frame(1, HELLO),
      frame(base + 2),
      frame(9),
    ]),
    echoThenFail(id(4), `Send small text message, then reserved ${kind} opcode ${base + 3} with payload, then a ping.`, text(HELLO), [
      frame(1, HELLO),
      frame(base + 3, HELLO),
      frame(9),
    ]),
    echoThenFail(id(5), `Same with reserved ${kind} opcode ${base + 4}, octet-wise chops.`, text(HELLO), [
      frame(1, HELLO, { chop: 1 }),
      frame(base + 4, HELLO, { chop: 1 }),
      frame(9, '', { chop: 1 }),
    ]),
  ];
}

export const reservedOpcodeCases: readonly FuzzingCase[] = [...opcodeCases(1, 3, 'non-control'), ...opcodeCases(2, 11, 'control')];
