/**
 * What the header-grammar tests share: RFC 9110 token characters, fast-check arbitraries for
 * tokens and optional whitespace, and the check that a parser refused its input with a 400.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { HandshakeError } from '../../src/shared/errors.ts';

/** RFC 9110 §5.6.2 tchar. */
export const TCHARS = [..."!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"];

export const tokenArb = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength });

/** OWS: spaces and tabs. */
export const owsArb = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength });

/** Runs `fn` and expects a HandshakeError with status 400 (and, when given, a matching message). */
export function expect400(fn: () => unknown, message?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HandshakeError);
    expect((err as HandshakeError).status).toBe(400);
    if (message !== undefined) expect((err as HandshakeError).message).toMatch(message);
    return;
  }
  expect.fail('expected a HandshakeError(400)');
}
