/**
 * UTF-8 validation of text messages (RFC 6455 §8.1). ws validates a whole message once it is
 * assembled, with `buffer.isUtf8` from 24 bytes up (its JS `_isValidUTF8` and the utf-8-validate
 * addon are only used on runtimes without `buffer.isUtf8`, so they are not reachable on Node 26).
 * Ours validates as fragments arrive; the "pieces" row feeds the same 4 KiB in 1 KiB writes, cut
 * wherever 1 KiB falls (mid-character included), against ws validating the whole text once.
 */
import { Utf8Validator, isValidUtf8 } from '../../src/shared/utf8.ts';
import type { BenchCase, Subject } from './case.ts';
import { assert } from './case.ts';
import { multilingualText } from './fixtures.ts';
import { validation } from './ws-internals.ts';

const BATCH = 64;
const text = multilingualText(4096);
const pieces: Buffer[] = [];
for (let at = 0; at < text.length; at += 1024) pieces.push(text.subarray(at, at + 1024));

const validator = new Utf8Validator();

function validateWhole(): boolean {
  validator.reset();
  return validator.write(text) && validator.complete;
}

function validatePieces(): boolean {
  validator.reset();
  for (const piece of pieces) if (!validator.write(piece)) return false;
  return validator.complete;
}

function batched(label: string, check: () => boolean): Subject {
  return {
    label,
    batch: BATCH,
    fn: () => {
      let ok = true;
      for (let i = 0; i < BATCH; i++) ok = check() && ok;
      if (!ok) throw new Error(`${label}: valid text refused`);
    },
  };
}

const ws = batched('ws isValidUTF8 (whole)', () => validation.isValidUTF8(text));
const name = `UTF-8 validate ${text.length} B multilingual`;

function verify(): void {
  assert(validateWhole() && validatePieces() && isValidUtf8(text) && validation.isValidUTF8(text), `${name}: valid text refused`);
  // The same verdict on invalid input: an unpaired surrogate (ED A0 80) in the third piece.
  const bad = Buffer.from(text);
  bad.set([0xed, 0xa0, 0x80], 2500);
  validator.reset();
  const oursBad = validator.write(bad.subarray(0, 2048)) && validator.write(bad.subarray(2048)) && validator.complete;
  assert(!oursBad && !validation.isValidUTF8(bad), `${name}: invalid text accepted`);
}

export const cases: BenchCase[] = [
  { name: `${name}, whole`, ours: batched('ours Utf8Validator.write', validateWhole), baseline: ws, bytes: text.length, verify },
  { name: `${name}, whole`, ours: batched('ours isValidUtf8', () => isValidUtf8(text)), baseline: ws, bytes: text.length, verify },
  { name: `${name}, 1 KiB pieces`, ours: batched('ours Utf8Validator.write ×4', validatePieces), baseline: ws, bytes: text.length, verify },
];
