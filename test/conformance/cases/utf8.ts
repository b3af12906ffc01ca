/**
 * Group 6, UTF-8 in text messages (RFC 6455 §8.1): valid text in any fragmentation is echoed;
 * invalid text fails the connection with 1007, and as soon as the invalid byte arrives (6.4.x).
 * 6.5–6.23 are the sequences of Markus Kuhn's UTF-8 decoder stress test, as Autobahn numbers them.
 */
import type { FuzzingCase, Step } from '../fuzzing-case.ts';
import { FAIL_INVALID_PAYLOAD, frame, scripted, text, timeout, wait } from '../fuzzing-case.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const cat = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));

/** "κόσμε", the decoder test's sample text: code points of 2, 3, 2, 2 and 2 bytes. */
const KOSME = hex('ce ba e1 bd b9 cf 83 ce bc ce b5');
const KOSME_BOUNDARIES = new Set([2, 5, 7, 9, 11]);
const VALID_TEXT = Buffer.from('Hello-µ@ßöäüàá-UTF-8!!');

/** Text of one frame each (1 byte per frame when `frameSize` is 1). */
function messageSteps(payload: Buffer, frameSize?: number): Step[] {
  if (frameSize === undefined) return [frame(1, payload)];
  const steps: Step[] = [];
  for (let at = 0; at < payload.length; at += frameSize) {
    steps.push(frame(at === 0 ? 1 : 0, payload.subarray(at, at + frameSize), { fin: at + frameSize >= payload.length }));
  }
  return steps;
}

const echoed = (id: string, description: string, steps: Step[], payload: Buffer): FuzzingCase =>
  scripted({ id, description, steps, outcomes: { OK: [text(payload)] }, end: { close: 1000 } });

const refused = (id: string, description: string, steps: Step[], kill = 1000): FuzzingCase =>
  scripted({ id, description, steps, close: FAIL_INVALID_PAYLOAD, end: { kill } });

// 6.4.x: the invalid sequence (a code point above U+10FFFF) arrives after a pause; the peer must
// fail before the pause that follows it ends (OK), or at the latest at the end of the message (NON-STRICT).
const FAIL_FAST_PAYLOAD = cat(KOSME, hex('f4 90 80 80'), 'edited');
const PAUSE_MS = 500;

function failFast(id: string, description: string, parts: readonly Buffer[], oneFrame: boolean): FuzzingCase {
  const steps: Step[] = [];
  if (oneFrame) {
    steps.push({ do: 'frame-head', opcode: 1, length: FAIL_FAST_PAYLOAD.length });
    parts.forEach((part, i) => {
      if (i > 0) steps.push(wait(PAUSE_MS, i === 1 ? 'A' : 'B'));
      steps.push({ do: 'frame-data', data: part });
    });
  } else {
    parts.forEach((part, i) => {
      if (i > 0) steps.push(wait(PAUSE_MS, i === 1 ? 'A' : 'B'));
      steps.push(frame(i === 0 ? 1 : 0, part, { fin: i === parts.length - 1 }));
    });
  }
  return scripted({
    id,
    description,
    steps,
    outcomes: { OK: [timeout('A')], 'NON-STRICT': [timeout('A'), timeout('B')] },
    close: FAIL_INVALID_PAYLOAD,
    end: { kill: 1000 },
  });
}

const threeParts = [KOSME, hex('f4 90 80 80'), Buffer.from('edited')];
const splitAtByte12 = [FAIL_FAST_PAYLOAD.subarray(0, 12), FAIL_FAST_PAYLOAD.subarray(12, 13), FAIL_FAST_PAYLOAD.subarray(13)];

/** [valid?, bytes] per subgroup 6.5 … 6.23. */
type Sequences = readonly [title: string, tests: readonly (readonly [boolean, Buffer])[]];

function kuhnSequences(): Sequences[] {
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
  const lastMissing = ['c0', 'e0 80', 'f0 80 80', 'f8 80 80 80', 'fc 80 80 80 80', 'df', 'ef bf', 'f7 bf bf', 'fb bf bf bf', 'fd bf bf bf bf'].map(hex);
  const nonCharacters: Buffer[] = [hex('ef bf be'), hex('ef bf bf')];
  for (const lead of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const second of [0x8f, 0x9f, 0xaf, 0xbf]) {
      if (lead === 0xf4 && second !== 0x8f) continue; // above U+10FFFF
      if (lead === 0xf0 && second === 0x8f) continue; // overlong
      for (const last of [0xbe, 0xbf]) nonCharacters.push(Buffer.from([lead, second, 0xbf, last]));
    }
  }
  const T = (b: Buffer): readonly [boolean, Buffer] => [true, b];
  const F = (b: Buffer): readonly [boolean, Buffer] => [false, b];
  return [
    ['Some valid UTF-8 sequences', [cat('hello$world'), cat('hello', hex('c2 a2'), 'world'), cat('hello', hex('e2 82 ac'), 'world'), cat('hello', hex('f0 a4 ad a2'), 'world'), KOSME].map(T)],
    ['All prefixes of a valid UTF-8 string with multi-byte code points', range(1, 12).map((n) => [KOSME_BOUNDARIES.has(n), KOSME.subarray(0, n)] as const)],
    ['First possible sequence of a certain length', ['00', 'c2 80', 'e0 a0 80', 'f0 90 80 80'].map(hex).map(T)],
    ['First possible sequence length 5/6 (invalid code points)', ['f8 88 80 80 80', 'fc 84 80 80 80 80'].map(hex).map(F)],
    ['Last possible sequence of a certain length', ['7f', 'df bf', 'ef bf bf', 'f4 8f bf bf'].map(hex).map(T)],
    ['Last possible sequence length 4/5/6 (invalid code points)', ['f7 bf bf bf', 'fb bf bf bf bf', 'fd bf bf bf bf bf'].map(hex).map(F)],
    ['Other boundary conditions', [T(hex('ed 9f bf')), T(hex('ee 80 80')), T(hex('ef bf bd')), T(hex('f4 8f bf bf')), F(hex('f4 90 80 80'))]],
    [
      'Unexpected continuation bytes',
      [...['80', 'bf', '80 bf', '80 bf 80', '80 bf 80 bf', '80 bf 80 bf 80', '80 bf 80 bf 80 bf'].map(hex), Buffer.from(range(0x80, 0xbf))].map(F),
    ],
    [
      'Lonely start characters',
      [
        [0xc0, 0xdf],
        [0xe0, 0xef],
        [0xf0, 0xf7],
        [0xf8, 0xfb],
        [0xfc, 0xfd],
      ].map(([from, to]) => F(Buffer.from(range(from!, to!).flatMap((b) => [b, 0x20])))),
    ],
    ['Sequences with last continuation byte missing', lastMissing.map(F)],
    ['Concatenation of incomplete sequences', [F(Buffer.concat(lastMissing))]],
    ['Impossible bytes', ['fe', 'ff', 'fe fe ff ff'].map(hex).map(F)],
    ['Examples of an overlong ASCII character', ['c0 af', 'e0 80 af', 'f0 80 80 af', 'f8 80 80 80 af', 'fc 80 80 80 80 af'].map(hex).map(F)],
    ['Maximum overlong sequences', ['c1 bf', 'e0 9f bf', 'f0 8f bf bf', 'f8 87 bf bf bf', 'fc 83 bf bf bf bf'].map(hex).map(F)],
    ['Overlong representation of the NUL character', ['c0 80', 'e0 80 80', 'f0 80 80 80', 'f8 80 80 80 80', 'fc 80 80 80 80 80'].map(hex).map(F)],
    ['Single UTF-16 surrogates', ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf', 'ed b0 80', 'ed be 80', 'ed bf bf'].map(hex).map(F)],
    [
      'Paired UTF-16 surrogates',
      ['a0 80', 'ad bf', 'ae 80', 'af bf'].flatMap((high) => ['b0 80', 'bf bf'].map((low) => F(hex(`ed ${high} ed ${low}`)))),
    ],
    ['Non-character code points (valid UTF-8)', nonCharacters.map(T)],
    ['Unicode specials (i.e. replacement char)', ['b9', 'ba', 'bb', 'bc', 'bd', 'be', 'bf'].map((b) => T(hex(`ef bf ${b}`)))],
  ];
}

function sequenceCases(): FuzzingCase[] {
  return kuhnSequences().flatMap(([title, tests], g) =>
    tests.map(([valid, payload], i) => {
      const id = `6.${5 + g}.${i + 1}`;
      const description = `${title}: a text message of 0x${payload.toString('hex')} in one frame.`;
      return valid ? echoed(id, description, messageSteps(payload), payload) : refused(id, description, messageSteps(payload), 500);
    }),
  );
}

const INVALID_TEXT = cat(KOSME, hex('ed a0 80'), 'edited');

export const utf8Cases: readonly FuzzingCase[] = [
  echoed('6.1.1', 'Send text message of length 0.', [frame(1)], Buffer.alloc(0)),
  echoed('6.1.2', 'Send text message in 3 fragments, each of length 0.', [frame(1, '', { fin: false }), frame(0, '', { fin: false }), frame(0)], Buffer.alloc(0)),
  echoed(
    '6.1.3',
    'Send text message in 3 fragments, first and last of length 0.',
    [frame(1, '', { fin: false }), frame(0, 'middle frame payload', { fin: false }), frame(0)],
    Buffer.from('middle frame payload'),
  ),
  echoed('6.2.1', 'Send valid UTF-8 text in one fragment.', messageSteps(VALID_TEXT), VALID_TEXT),
  echoed(
    '6.2.2',
    'Send valid UTF-8 text in two fragments, split on a code point boundary.',
    [frame(1, 'Hello-µ@ßöä', { fin: false }), frame(0, 'üàá-UTF-8!!')],
    VALID_TEXT,
  ),
  echoed('6.2.3', 'Send valid UTF-8 text in fragments of 1 octet, splitting code points.', messageSteps(VALID_TEXT, 1), VALID_TEXT),
  echoed('6.2.4', 'Send "κόσμε" in fragments of 1 octet, splitting code points.', messageSteps(KOSME, 1), KOSME),
  refused('6.3.1', 'Send invalid UTF-8 text (a UTF-16 surrogate) in one frame.', messageSteps(INVALID_TEXT)),
  refused('6.3.2', 'Send invalid UTF-8 text in fragments of 1 octet.', messageSteps(INVALID_TEXT, 1)),
  failFast('6.4.1', 'Invalid text in 3 frames with pauses: the 2nd frame holds a code point above U+10FFFF.', threeParts, false),
  failFast('6.4.2', 'As 6.4.1, but the 2nd frame is just the octet that makes the text invalid.', splitAtByte12, false),
  failFast('6.4.3', 'As 6.4.1, but the 3 parts are chops of one frame.', threeParts, true),
  failFast('6.4.4', 'As 6.4.2, but the 3 parts are chops of one frame.', splitAtByte12, true),
  ...sequenceCases(),
];
