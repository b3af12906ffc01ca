/** Group 3, reserved bits: RSV1–3 set with no extension negotiated fail the connection (RFC 6455 §5.2). */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { echoThenFail, failing, frame, text } from '../fuzzing-case.ts';

const HELLO = 'Hello, world!';

export const reservedBitCases: readonly FuzzingCase[] = [
  failing('3.1', 'Send small text message with RSV = 1.', [frame(1, HELLO, { rsv: 1 })]),
  echoThenFail('3.2', 'Send small text message, then again with RSV = 2, then a ping.', text(HELLO), [
    frame(1, HELLO),
    frame(1, HELLO, { rsv: 2 }),
    frame(9),
  ]),
  echoThenFail('3.3', 'Send small text message, then again with RSV = 3, then a ping; frame-wise writes.', text(HELLO), [
    frame(1, HELLO),
    frame(1, HELLO, { rsv: 3 }),
    frame(9),
  ]),
  echoThenFail('3.4', 'Send small text message, then again with RSV = 4, then a ping; octet-wise chops.', text(HELLO), [
    frame(1, HELLO, { chop: 1 }),
    frame(1, HELLO, { rsv: 4, chop: 1 }),
    frame(9, '', { chop: 1 }),
  ]),
  failing('3.5', 'Send small binary message with RSV = 5.', [frame(2, Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]), { rsv: 5 })]),
  // The suite's description says "Ping with RSV = 6" (its code sends a binary frame, as 3.5 does);
  // the ping covers the control-frame path that 3.5 does not.
  failing('3.6', 'Send ping with RSV = 6.', [frame(9, HELLO, { rsv: 6 })]),
  failing('3.7', 'Send close with RSV = 7.', [frame(8, '', { rsv: 7 })]),
];
