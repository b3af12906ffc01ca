/** Group 7, the closing handshake (RFC 6455 §5.5.1, §7): close payloads, codes, and what may follow a close. */
import type { CloseExpectation, FuzzingCase, Step } from '../fuzzing-case.ts';
import { CLEAN_NORMAL_CLOSE, INVALID_PAYLOAD, NORMAL, PROTOCOL_ERROR, close, frame, repeat, scripted, text } from '../fuzzing-case.ts';

/** We close; the peer answers and the handshake completes. A wrong code fails the case. */
const closing = (id: string, description: string, steps: Step[], expect: CloseExpectation = CLEAN_NORMAL_CLOSE): FuzzingCase =>
  scripted({ id, description, steps, close: expect, suppressClose: true, wrongCodeFails: true });

/** We close with something invalid; the peer answers 1002 (or 1007) or drops TCP. */
const badClose = (codes: number[]): CloseExpectation => ({ closedByMe: true, codes, requireClean: false });

const INVALID_UTF8_REASON = Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex');

/** 7.7.x: codes a peer must accept, answering with 1000 or the same code. */
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
/** 7.9.x: codes that may never appear on the wire. */
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999];

export const closeCases: readonly FuzzingCase[] = [
  scripted({
    id: '7.1.1',
    description: 'Send a message, then close normally once it is echoed.',
    steps: [frame(1, 'Hello World!')],
    outcomes: { OK: [text('Hello World!')] },
    wrongCodeFails: true,
  }),
  closing('7.1.2', 'Send two close frames: the second is ignored.', [close(NORMAL), frame(8)]),
  closing('7.1.3', 'Send a ping after the close frame: no pong.', [close(NORMAL), frame(9)]),
  closing('7.1.4', 'Send a text message after the close frame: ignored.', [close(NORMAL), frame(1, 'Hello World!')]),
  closing('7.1.5', 'Send a fragment, the close frame, then the last fragment: ignored.', [frame(1, 'fragment1', { fin: false }), close(NORMAL), frame(0, 'fragment2')]),
  scripted({
    id: '7.1.6',
    description: 'Send a 256 KiB message, a small one, the close frame and a ping back to back (outcome is implementation defined).',
    steps: [frame(1, repeat('BAsd7&jh23', 256 * 1024)), frame(1, 'Hello World!'), close(NORMAL), frame(9)],
    outcomes: { OK: [text(repeat('BAsd7&jh23', 256 * 1024)), text('Hello World!')], 'NON-STRICT': [] },
    suppressClose: true,
    informational: true,
  }),
  closing('7.3.1', 'Send a close frame with payload length 0 (no code, no reason).', [close()]),
  closing('7.3.2', 'Send a close frame with payload length 1.', [{ do: 'close', payload: Buffer.from('a') }], badClose([PROTOCOL_ERROR])),
  closing('7.3.3', 'Send a close frame with payload length 2 (a code, no reason).', [close(NORMAL)]),
  closing('7.3.4', 'Send a close frame with a code and a reason.', [close(NORMAL, 'Hello World!')]),
  closing('7.3.5', 'Send a close frame with a reason of the maximum length (123).', [close(NORMAL, '*'.repeat(123))]),
  // 126 octets of close payload: a control frame over 125, which the peer must refuse.
  closing('7.3.6', 'Send a close frame with a reason that is too long (124): 126 octets of payload.', [close(NORMAL, '*'.repeat(124))], badClose([PROTOCOL_ERROR])),
  closing('7.5.1', 'Send a close frame with a reason that is not UTF-8.', [close(NORMAL, INVALID_UTF8_REASON)], badClose([PROTOCOL_ERROR, INVALID_PAYLOAD])),
  ...VALID_CODES.map((code, i) =>
    closing(`7.7.${i + 1}`, `Send close with valid close code ${code}.`, [close(code)], { closedByMe: true, codes: [NORMAL, code], requireClean: true }),
  ),
  ...INVALID_CODES.map((code, i) => closing(`7.9.${i + 1}`, `Send close with invalid close code ${code}.`, [close(code)], badClose([PROTOCOL_ERROR]))),
  ...[5000, 65535].map((code, i) =>
    scripted({
      id: `7.13.${i + 1}`,
      description: `Send close with close code ${code} (outcome undefined by the spec).`,
      steps: [close(code)],
      close: badClose([NORMAL, code, PROTOCOL_ERROR]),
      suppressClose: true,
      informational: true,
    }),
  ),
];
