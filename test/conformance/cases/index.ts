/** Every case, by group, in Autobahn's order; `M` (masking) is ours. */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { groupOf } from '../fuzzing-case.ts';
import { closeCases } from './close.ts';
import { compressionParamCases } from './compression-params.ts';
import { compressionCases } from './compression.ts';
import type { MessageCounts } from './compression.ts';
import { fragmentationCases } from './fragmentation.ts';
import { framingCases } from './framing.ts';
import { limitCases } from './limits.ts';
import { maskingCases } from './masking.ts';
import { miscCases } from './misc.ts';
import { reservedOpcodeCases } from './opcodes.ts';
import { pingCases } from './pings.ts';
import { reservedBitCases } from './reserved-bits.ts';
import { utf8Cases } from './utf8.ts';

/** Groups 12 and 13 send Autobahn's 1000 messages per case with `'autobahn'` counts (see compression.ts). */
export function allCases(counts: MessageCounts = 'bounded'): FuzzingCase[] {
  return [
    ...framingCases,
    ...maskingCases,
    ...pingCases,
    ...reservedBitCases,
    ...reservedOpcodeCases,
    ...fragmentationCases,
    ...utf8Cases,
    ...closeCases,
    ...limitCases,
    ...miscCases,
    ...compressionCases(counts),
    ...compressionParamCases(counts),
  ];
}

/** Cases of the given groups ("1", "12", "M"…). */
export const casesOf = (groups: readonly string[], counts: MessageCounts = 'bounded'): FuzzingCase[] =>
  allCases(counts).filter((c) => groups.includes(groupOf(c.id)));
