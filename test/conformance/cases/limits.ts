/**
 * Group 9, limits (bounded subset): single-frame messages up to 16 MiB (9.1.x text, 9.2.x binary)
 * and a 4 MiB message in 64-byte fragments (9.3.1 text, 9.4.1 binary). Autobahn also checks
 * only length; we compare every byte.
 */
import type { EchoMessage, FuzzingCase } from '../fuzzing-case.ts';
import { repeat } from '../fuzzing-case.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const SIZES: readonly [label: string, bytes: number][] = [
  ['64 KiB', 64 * KIB],
  ['256 KiB', 256 * KIB],
  ['1 MiB', MIB],
  ['4 MiB', 4 * MIB],
  ['8 MiB', 8 * MIB],
  ['16 MiB', 16 * MIB],
];
const TEXT_UNIT = 'BAsd7&jh23';
const BINARY_UNIT = Buffer.from([0x00, 0xfe, 0x23, 0xfa, 0xf0]);

/** The message is built only when the case runs, so idle cases hold no memory. */
const once = (make: () => EchoMessage): (() => Iterable<EchoMessage>) => () => [make()];

export const limitCases: readonly FuzzingCase[] = [
  ...SIZES.map(([label, size], i): FuzzingCase => ({
    kind: 'echo',
    id: `9.1.${i + 1}`,
    description: `Send a text message of ${label} in one frame.`,
    messages: once(() => ({ data: repeat(TEXT_UNIT, size), binary: false })),
    timeoutMs: 30_000,
  })),
  ...SIZES.map(([label, size], i): FuzzingCase => ({
    kind: 'echo',
    id: `9.2.${i + 1}`,
    description: `Send a binary message of ${label} in one frame.`,
    messages: once(() => ({ data: repeat(BINARY_UNIT, size), binary: true })),
    timeoutMs: 30_000,
  })),
  {
    kind: 'echo',
    id: '9.3.1',
    description: 'Send a 4 MiB text message in fragments of 64 octets (65,536 frames).',
    messages: once(() => ({ data: repeat('*', 4 * MIB), binary: false })),
    fragmentSize: 64,
    timeoutMs: 60_000,
  },
  {
    kind: 'echo',
    id: '9.4.1',
    description: 'Send a 4 MiB binary message in fragments of 64 octets (65,536 frames).',
    messages: once(() => ({ data: repeat(Buffer.from([0xfe]), 4 * MIB), binary: true })),
    fragmentSize: 64,
    timeoutMs: 60_000,
  },
];
