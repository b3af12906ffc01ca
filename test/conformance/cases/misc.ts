/** Group 10, miscellaneous: 10.1.1 auto-fragmentation (a 64 KiB text message in frames of 1300 octets). */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { repeat } from '../fuzzing-case.ts';

export const miscCases: readonly FuzzingCase[] = [
  {
    kind: 'echo',
    id: '10.1.1',
    description: 'Send a text message of 65536 octets auto-fragmented into frames of 1300 octets.',
    messages: () => [{ data: repeat('*', 65536), binary: false }],
    fragmentSize: 1300,
    timeoutMs: 10_000,
  },
];
