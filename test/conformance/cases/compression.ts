/**
 * Group 12, permessage-deflate (RFC 7692) payloads: for each of five kinds of data, messages of
 * 16 B to 128 KiB, whole or with the compressed payload fragmented, each compressed by the fuzzer
 * and echoed by the peer. Autobahn sends 1000 messages per case (`'autobahn'` counts); the
 * `'bounded'` counts send about 256 KiB per case (at least 2 messages, at most 16), for the runs
 * repeated over every compression setting.
 */
import { compressionData, slices } from '../compression-data.ts';
import type { DeflateSetup, FuzzingCase } from '../fuzzing-case.ts';

/** Autobahn's (payload length, auto-fragment size) pairs; 0 = one frame. */
export const MESSAGE_SIZES: readonly (readonly [length: number, fragment: number])[] = [
  [16, 0],
  [64, 0],
  [256, 0],
  [1024, 0],
  [4096, 0],
  [8192, 0],
  [16384, 0],
  [32768, 0],
  [65536, 0],
  [131072, 0],
  [8192, 256],
  [16384, 256],
  [32768, 256],
  [65536, 256],
  [131072, 256],
  [131072, 1024],
  [131072, 4096],
  [131072, 32768],
];

/** How many messages a compression case sends (see the top of this file). */
export type MessageCounts = 'autobahn' | 'bounded';

/** Autobahn's count for every case of groups 12 and 13. */
export const AUTOBAHN_MESSAGES = 1000;

export const messageCount = (length: number, counts: MessageCounts): number =>
  counts === 'autobahn' ? AUTOBAHN_MESSAGES : Math.min(16, Math.max(2, Math.floor((256 * 1024) / length)));

/** The time a case has: bounded runs are quick; Autobahn's counts move up to 128 MiB each way. */
export const caseTimeout = (counts: MessageCounts): number => (counts === 'autobahn' ? 300_000 : 30_000);

/** Autobahn's default offer (client_no_context_takeover; client_max_window_bits), accepted as is. */
export const DEFAULT_DEFLATE: DeflateSetup = {
  offers: [{ clientNoContextTakeover: true, clientMaxWindowBits: true }],
  accept: [{ requestNoContextTakeover: false, requestMaxWindowBits: 0 }],
};

export function compressionCases(counts: MessageCounts): FuzzingCase[] {
  return compressionData().flatMap((data, d) =>
    MESSAGE_SIZES.map(([length, fragment], s): FuzzingCase => {
      const count = messageCount(length, counts);
      return {
        kind: 'echo',
        id: `12.${d + 1}.${s + 1}`,
        description: `${data.description}: ${count} compressed messages of ${length} B${fragment > 0 ? `, fragmented into ${fragment} B frames` : ''}.`,
        messages: () => [...slices(data.bytes, length, count)].map((bytes) => ({ data: bytes, binary: data.binary })),
        ...(fragment > 0 ? { fragmentSize: fragment } : {}),
        deflate: DEFAULT_DEFLATE,
        timeoutMs: caseTimeout(counts),
      };
    }),
  );
}
