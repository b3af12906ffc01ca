/** Group 2, pings and pongs (RFC 6455 §5.5.2, §5.5.3). */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { NORMAL, close, failing, frame, pong, repeat, scripted } from '../fuzzing-case.ts';

const PING = 9;
const PONG = 10;
const SMALL_BINARY = Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
const UNSOLICITED = 'unsolicited pong payload';

const pingCase = (id: string, description: string, payload: string | Buffer, chop?: number): FuzzingCase =>
  scripted({
    id,
    description,
    steps: [frame(PING, payload, chop === undefined ? {} : { chop })],
    outcomes: { OK: [pong(payload)] },
    end: { close: chop === undefined ? 1000 : 2000 },
  });

const tenPings = (id: string, chop?: number): FuzzingCase => {
  const payloads = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
  return scripted({
    id,
    description: `Send 10 pings with payload${chop === undefined ? '' : ', octet-wise chops'}; expect a pong for each.`,
    steps: payloads.map((p) => frame(PING, p, chop === undefined ? {} : { chop })),
    outcomes: { OK: payloads.map((p) => pong(p)) },
    end: { close: 3000 },
  });
};

export const pingCases: readonly FuzzingCase[] = [
  pingCase('2.1', 'Send ping without payload.', ''),
  pingCase('2.2', 'Send ping with small text payload.', 'Hello, world!'),
  pingCase('2.3', 'Send ping with small binary (non UTF-8) payload.', SMALL_BINARY),
  pingCase('2.4', 'Send ping with binary payload of 125 octets.', repeat(Buffer.from([0xfe]), 125)),
  failing('2.5', 'Send ping with binary payload of 126 octets: control frames carry at most 125.', [frame(PING, repeat(Buffer.from([0xfe]), 126))]),
  pingCase('2.6', 'Send ping with binary payload of 125 octets, octet-wise chops.', repeat(Buffer.from([0xfe]), 125), 1),
  scripted({
    id: '2.7',
    description: 'Send unsolicited pong without payload, then close; nothing comes back.',
    steps: [frame(PONG), close(NORMAL)],
    end: { close: 1000 },
  }),
  scripted({
    id: '2.8',
    description: 'Send unsolicited pong with payload, then close; nothing comes back.',
    steps: [frame(PONG, UNSOLICITED), close(NORMAL)],
    end: { close: 1000 },
  }),
  scripted({
    id: '2.9',
    description: 'Send unsolicited pong with payload, then a ping with payload; only the ping is answered.',
    steps: [frame(PONG, UNSOLICITED), frame(PING, 'ping payload')],
    outcomes: { OK: [pong('ping payload')] },
    end: { close: 1000 },
  }),
  tenPings('2.10'),
  tenPings('2.11', 1),
];
