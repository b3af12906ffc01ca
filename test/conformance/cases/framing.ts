/** Group 1, framing: text and binary messages at every length-encoding boundary (RFC 6455 §5.2). */
import type { FuzzingCase } from '../fuzzing-case.ts';
import { binary, frame, repeat, scripted, text } from '../fuzzing-case.ts';

/** 1.x.1–1.x.7: one frame each; 1.x.8 repeats 1.x.7 written in 997-byte pieces. */
const LENGTHS = [0, 125, 126, 127, 128, 65535, 65536];

function lengthCases(sub: 1 | 2): FuzzingCase[] {
  const isBinary = sub === 2;
  const unit = isBinary ? Buffer.from([0xfe]) : '*';
  const expect = isBinary ? binary : text;
  const cases = LENGTHS.map((length, i) =>
    scripted({
      id: `1.${sub}.${i + 1}`,
      description: `Send a ${isBinary ? 'binary' : 'text'} message with payload of length ${length}.`,
      steps: [frame(isBinary ? 2 : 1, repeat(unit, length))],
      outcomes: { OK: [expect(repeat(unit, length))] },
      end: { kill: length > 1000 ? 10_000 : 1000 },
    }),
  );
  cases.push(
    scripted({
      id: `1.${sub}.8`,
      description: `Send a ${isBinary ? 'binary' : 'text'} message with payload of length 65536, written in chops of 997 octets.`,
      steps: [frame(isBinary ? 2 : 1, repeat(unit, 65536), { chop: 997 })],
      outcomes: { OK: [expect(repeat(unit, 65536))] },
      end: { kill: 10_000 },
    }),
  );
  return cases;
}

export const framingCases: readonly FuzzingCase[] = [...lengthCases(1), ...lengthCases(2)];
