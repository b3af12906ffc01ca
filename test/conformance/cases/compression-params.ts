/**
 * Group 13, permessage-deflate parameters (RFC 7692 §7.1). 13.1–13.7 are Autobahn's offer and
 * answer combinations on JSON data, each with all 18 of group 12's message sizes; 13.8 is ours:
 * every combination of client_max_window_bits 8–15, server_max_window_bits 8–15 and the two
 * no_context_takeover flags, with messages that reach back across windows and messages.
 */
import { compressionData, slices } from '../compression-data.ts';
import type { DeflateAccept, DeflateSetup, EchoMessage, FuzzingCase } from '../fuzzing-case.ts';
import type { DeflateOfferOptions, WindowBits } from '../../../src/shared/permessage-deflate.ts';
import { MESSAGE_SIZES, caseTimeout, messageCount } from './compression.ts';
import type { MessageCounts } from './compression.ts';

/** Autobahn's PerMessageDeflateOffer(): hints client_no_context_takeover, offers client_max_window_bits. */
const BASE_OFFER: DeflateOfferOptions = { clientNoContextTakeover: true, clientMaxWindowBits: true };
const accept = (requestNoContextTakeover: boolean, requestMaxWindowBits: WindowBits | 0): DeflateAccept => ({ requestNoContextTakeover, requestMaxWindowBits });

const AUTOBAHN_SETUPS: readonly [description: string, setup: DeflateSetup][] = [
  ['default offer / accept', { offers: [BASE_OFFER], accept: [accept(false, 0)] }],
  ['offer server_no_context_takeover / request client_no_context_takeover', { offers: [{ ...BASE_OFFER, serverNoContextTakeover: true }], accept: [accept(true, 0)] }],
  ['offer server_max_window_bits=8 / request client_max_window_bits=8', { offers: [{ ...BASE_OFFER, serverMaxWindowBits: 8 }], accept: [accept(false, 8)] }],
  ['offer server_max_window_bits=15 / request client_max_window_bits=15', { offers: [{ ...BASE_OFFER, serverMaxWindowBits: 15 }], accept: [accept(false, 15)] }],
  [
    'offer server_no_context_takeover, server_max_window_bits=8 / request both for the client',
    { offers: [{ ...BASE_OFFER, serverNoContextTakeover: true, serverMaxWindowBits: 8 }], accept: [accept(true, 8)] },
  ],
  [
    'offer server_no_context_takeover, server_max_window_bits=15 / request both for the client',
    { offers: [{ ...BASE_OFFER, serverNoContextTakeover: true, serverMaxWindowBits: 15 }], accept: [accept(true, 15)] },
  ],
  [
    'three offers in preference order / first acceptable answer',
    {
      offers: [{ ...BASE_OFFER, serverNoContextTakeover: true, serverMaxWindowBits: 8 }, { ...BASE_OFFER, serverNoContextTakeover: true }, BASE_OFFER],
      accept: [accept(true, 8), accept(true, 0), accept(false, 0)],
    },
  ],
];


const WINDOWS: readonly WindowBits[] = [8, 9, 10, 11, 12, 13, 14, 15];
const CONTEXT_FLAGS: readonly (readonly [client: boolean, server: boolean])[] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

export function compressionParamCases(counts: MessageCounts): FuzzingCase[] {
  const json = compressionData()[3]!;
  const cases: FuzzingCase[] = [];
  AUTOBAHN_SETUPS.forEach(([description, setup], j) => {
    MESSAGE_SIZES.forEach(([length, fragment], i) => {
      const count = messageCount(length, counts);
      cases.push({
        kind: 'echo',
        id: `13.${j + 1}.${i + 1}`,
        description: `${description}: ${count} JSON messages of ${length} B${fragment > 0 ? ` in ${fragment} B frames` : ''}.`,
        messages: () => [...slices(json.bytes, length, count)].map((bytes) => ({ data: bytes, binary: false })),
        ...(fragment > 0 ? { fragmentSize: fragment } : {}),
        deflate: setup,
        timeoutMs: caseTimeout(counts),
      });
    });
  });
  // 13.8: the same 4 KiB twice (context takeover reaches into the previous message), 64 KiB
  // (matches reach up to the whole window), then a short one.
  const matrixMessages = (): EchoMessage[] =>
    [json.bytes.subarray(0, 4096), json.bytes.subarray(0, 4096), json.bytes.subarray(4096, 4096 + 65536), json.bytes.subarray(100, 164)].map(
      (data) => ({ data, binary: false }),
    );
  let n = 0;
  for (const clientBits of WINDOWS) {
    for (const serverBits of WINDOWS) {
      for (const [clientNoContext, serverNoContext] of CONTEXT_FLAGS) {
        n++;
        const flags = [clientNoContext ? 'client_no_context_takeover' : '', serverNoContext ? 'server_no_context_takeover' : ''].filter(Boolean).join(', ');
        cases.push({
          kind: 'echo',
          id: `13.8.${n}`,
          description: `Offer client_max_window_bits=${clientBits}, server_max_window_bits=${serverBits}${flags ? `, ${flags}` : ''}; 4 JSON messages.`,
          messages: matrixMessages,
          deflate: {
            offers: [{ clientMaxWindowBits: clientBits, serverMaxWindowBits: serverBits, clientNoContextTakeover: clientNoContext, serverNoContextTakeover: serverNoContext }],
            accept: [accept(clientNoContext, clientBits)],
          },
          timeoutMs: 10_000,
        });
      }
    }
  }
  return cases;
}
