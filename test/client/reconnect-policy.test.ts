/** Backoff delays and the default rule for which losses are retried. */
import { describe, expect, it } from 'vitest';
import { UnexpectedResponseError } from '../../src/client/client-errors.ts';
import { isTransientDisconnect, reconnectDelay } from '../../src/client/reconnect-policy.ts';
import { HandshakeError, ProtocolError } from '../../src/shared/errors.ts';

const lost = (code: number, error: Error | null = null) => ({ code, reason: '', wasClean: false, error });

describe('reconnectDelay', () => {
  it('doubles from minDelay up to maxDelay', () => {
    const backoff = { minDelay: 0.5, maxDelay: 5, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6, 100, 5000].map((step) => reconnectDelay(step, backoff))).toEqual([0.5, 1, 2, 4, 5, 5, 5, 5]);
  });

  it('takes up to `jitter` of each delay off at random', () => {
    const backoff = { minDelay: 1, maxDelay: 30, jitter: 0.5 };
    expect(reconnectDelay(3, backoff, () => 0)).toBe(4);
    expect(reconnectDelay(3, backoff, () => 0.999999)).toBeCloseTo(2, 5);
    for (let i = 0; i < 200; i++) {
      const delay = reconnectDelay(2, backoff);
      expect(delay).toBeGreaterThan(1);
      expect(delay).toBeLessThanOrEqual(2);
    }
    expect(reconnectDelay(1, { minDelay: 0, maxDelay: 0, jitter: 1 })).toBe(0);
  });
});

describe('isTransientDisconnect', () => {
  it('retries losses and the codes that say "try again"', () => {
    for (const code of [1001, 1005, 1006, 1011, 1012, 1013, 1014]) expect(isTransientDisconnect(lost(code)), String(code)).toBe(true);
    // Connection refused, reset, timed out: 1006 with a plain error.
    expect(isTransientDisconnect(lost(1006, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })))).toBe(true);
  });

  it('does not retry what would only repeat itself', () => {
    for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 3000, 4000, 4999]) expect(isTransientDisconnect(lost(code)), String(code)).toBe(false);
    expect(isTransientDisconnect(lost(1006, new ProtocolError('WS_ERR_INVALID_OPCODE', 1002, 'bad opcode')))).toBe(false);
    expect(isTransientDisconnect(lost(1006, new HandshakeError(400, 'bad accept')))).toBe(false);
  });

  it('retries a refused upgrade only for statuses that promise another answer later', () => {
    const refused = (status: number, fromProxy = false) => lost(1006, new UnexpectedResponseError(status, '', {}, fromProxy));
    for (const status of [408, 425, 429, 500, 502, 503, 504]) expect(isTransientDisconnect(refused(status)), String(status)).toBe(true);
    for (const status of [301, 302, 400, 401, 403, 404, 426]) expect(isTransientDisconnect(refused(status)), String(status)).toBe(false);
    expect(isTransientDisconnect(refused(407, true))).toBe(false);
    expect(isTransientDisconnect(refused(502, true))).toBe(true);
  });
});
