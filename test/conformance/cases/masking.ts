/**
 * Group M (ours, not Autobahn's), masking (RFC 6455 §5.1): a client masks every frame and a server
 * none; a frame masked the wrong way fails the connection with 1002. The fuzzer sends the wrong
 * kind for its role: unmasked frames to a server, masked frames to a client.
 */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { echoThenFail, failing, text } from '../fuzzing-case.ts';

const HELLO = 'Hello, world!';

export const maskingCases: readonly FuzzingCase[] = [
  failing('M.1', 'Send a text message masked against the rule of the sender role.', [{ do: 'frame', opcode: 1, payload: HELLO, wrongMask: true }]),
  failing('M.2', 'Send a ping masked against the rule of the sender role.', [{ do: 'frame', opcode: 9, payload: 'ping', wrongMask: true }]),
  echoThenFail('M.3', 'Send a valid text message, then one masked against the rule, then a ping.', text(HELLO), [
    { do: 'frame', opcode: 1, payload: HELLO },
    { do: 'frame', opcode: 1, payload: HELLO, wrongMask: true },
    { do: 'frame', opcode: 9 },
  ]),
];
