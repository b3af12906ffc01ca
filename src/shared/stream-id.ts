/**
 * Message ids of the durable (Redis Streams) bridge: a stream entry id, `<milliseconds>-<sequence>`,
 * both decimal integers (https://redis.io/docs/latest/develop/data-types/streams/#entry-ids).
 * Redis gives every entry of a stream an id greater than the last, so comparing ids orders a
 * topic's messages; that is how a connection that recovers drops what it already has.
 */

/** The id before every id (Redis's own minimum). */
export const FIRST_ID = '0-0';

/** Whether `id` is an entry id: two decimal integers joined by '-', no sign, no leading zeros, at most 20 digits each. */
export function isStreamId(id: unknown): id is string {
  if (typeof id !== 'string') return false;
  const dash = id.indexOf('-');
  return dash > 0 && decimal(id, 0, dash) && decimal(id, dash + 1, id.length);
}

function decimal(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 1 || length > 20) return false;
  if (length > 1 && text.charCodeAt(start) === 0x30) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * Orders two well-formed ids: negative, zero or positive. Compares the digit strings (shorter is
 * smaller, then character by character), so sequences past 2^53 compare right without BigInt.
 */
export function compareStreamIds(a: string, b: string): number {
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  return compareDigits(a, 0, dashA, b, 0, dashB) || compareDigits(a, dashA + 1, a.length, b, dashB + 1, b.length);
}

function compareDigits(a: string, startA: number, endA: number, b: string, startB: number, endB: number): number {
  const lengths = endA - startA - (endB - startB);
  if (lengths !== 0) return lengths;
  for (let i = 0; i < endA - startA; i++) {
    const d = a.charCodeAt(startA + i) - b.charCodeAt(startB + i);
    if (d !== 0) return d;
  }
  return 0;
}
