import { describe, expect, it, vi } from 'vitest';
import type { App, Priority, ServerWebSocket, SlowClientDecision } from '../../src/shared/app.ts';
import {
  CUSTOM_QUEUE_LIMIT_FACTOR,
  admit,
  appSlowClientPolicy,
  closeSlowClients,
  dropForSlowClients,
  slowClientPolicy,
} from '../../src/worker/send-admission.ts';
import type { OverLimit } from '../../src/worker/send-admission.ts';
import { recordingLogger } from '../support/fake-socket.ts';

const limits = { highWaterMark: 1000, maxBackpressure: 4000 };

const ws = { remoteAddress: '203.0.113.9' } as unknown as ServerWebSocket<unknown>;

/**
 * A message over the limit. `dropLowPriority` frees `freed` bytes (what dropping the queued
 * low-priority messages would give back) and counts its calls.
 */
function overLimit(fields: { buffered: number; size: number; priority?: Priority; limit?: number; freed?: number }) {
  const dropLowPriority = vi.fn(() => fields.buffered - (fields.freed ?? 0));
  const message: OverLimit = {
    ws,
    buffered: fields.buffered,
    size: fields.size,
    priority: fields.priority ?? 'normal',
    limit: fields.limit ?? limits.maxBackpressure,
    dropLowPriority,
  };
  return { message, dropLowPriority };
}

describe('admit', () => {
  it('writes at once when nothing waits and less than the high-water mark is buffered', () => {
    expect(admit(limits, 0, false, 10)).toBe('write');
    expect(admit(limits, 999, false, 10)).toBe('write');
  });

  it('queues from the high-water mark on', () => {
    expect(admit(limits, 1000, false, 10)).toBe('queue');
    expect(admit(limits, 1001, false, 10)).toBe('queue');
  });

  it('queues behind earlier messages that still wait, however little is buffered', () => {
    expect(admit(limits, 0, true, 10)).toBe('queue');
    expect(admit(limits, 1, true, 10)).toBe('queue');
  });

  it('is over the limit only when buffered + size passes maxBackpressure', () => {
    expect(admit(limits, 3990, false, 10)).toBe('queue');
    expect(admit(limits, 3990, false, 11)).toBe('over-limit');
    expect(admit(limits, 1, false, 4000)).toBe('over-limit');
    expect(admit(limits, 1, true, 3999)).toBe('queue');
  });

  it('the limit wins over waiting', () => {
    expect(admit(limits, 2000, true, 2001)).toBe('over-limit');
  });

  it('lets a message larger than the limit out on a connection with nothing buffered', () => {
    expect(admit(limits, 0, false, 16 * 1024 * 1024)).toBe('write');
    expect(admit(limits, 0, true, 16 * 1024 * 1024)).toBe('queue');
  });
});

describe('slow-client policies', () => {
  it("'close' closes whatever the message", () => {
    for (const priority of ['high', 'normal', 'low'] as const) {
      const { message, dropLowPriority } = overLimit({ buffered: 3000, size: 2000, priority });
      expect(closeSlowClients.overLimit(message)).toBe('close');
      expect(dropLowPriority).not.toHaveBeenCalled();
    }
  });

  it("decides a stall (slowClientTimeout): 'close' closes, 'drop' drops what waits", () => {
    expect(closeSlowClients.stalled(ws, 1)).toBe('close');
    expect(dropForSlowClients.stalled(ws, 1)).toBe('drop');
  });

  describe("'drop'", () => {
    it('drops a low-priority message outright, without dropping queued ones for it', () => {
      const { message, dropLowPriority } = overLimit({ buffered: 3000, size: 2000, priority: 'low', freed: 3000 });
      expect(dropForSlowClients.overLimit(message)).toBe('drop');
      expect(dropLowPriority).not.toHaveBeenCalled();
    });

    it('queues a normal or high message when dropping low-priority ones makes room for it', () => {
      for (const priority of ['normal', 'high'] as const) {
        const { message, dropLowPriority } = overLimit({ buffered: 3000, size: 2000, priority, freed: 1000 });
        // 3000 - 1000 + 2000 = 4000: exactly the limit fits.
        expect(dropForSlowClients.overLimit(message)).toBe('queue');
        expect(dropLowPriority).toHaveBeenCalledTimes(1);
      }
    });

    it('drops it when the room made is not enough (low-priority ones are gone anyway)', () => {
      const { message, dropLowPriority } = overLimit({ buffered: 3000, size: 2000, freed: 999 });
      expect(dropForSlowClients.overLimit(message)).toBe('drop');
      expect(dropLowPriority).toHaveBeenCalledTimes(1);
    });
  });

  describe("'custom'", () => {
    const withHandler = (decide: (...args: Parameters<NonNullable<App['slowClient']>>) => SlowClientDecision) => {
      const logger = recordingLogger();
      const slowClient = vi.fn(decide);
      return { policy: appSlowClientPolicy({ slowClient }, logger), slowClient, logger };
    };

    it('without an app handler is the drop policy', () => {
      expect(appSlowClientPolicy({}, recordingLogger())).toBe(dropForSlowClients);
    });

    it('asks the handler with the connection, the bytes buffered and the priority', () => {
      const { policy, slowClient } = withHandler(() => 'close');
      const { message } = overLimit({ buffered: 3500, size: 600, priority: 'high' });
      expect(policy.overLimit(message)).toBe('close');
      expect(slowClient).toHaveBeenCalledWith(ws, 3500, 'high', 'backpressure');
    });

    it(`'queue' is honoured up to ${CUSTOM_QUEUE_LIMIT_FACTOR}× the limit, then the connection is closed`, () => {
      const { policy } = withHandler(() => 'queue');
      const cap = limits.maxBackpressure * CUSTOM_QUEUE_LIMIT_FACTOR;
      expect(policy.overLimit(overLimit({ buffered: 3500, size: 600 }).message)).toBe('queue');
      expect(policy.overLimit(overLimit({ buffered: cap - 600, size: 600 }).message)).toBe('queue');
      expect(policy.overLimit(overLimit({ buffered: cap - 600, size: 601 }).message)).toBe('close');
      // The clamp follows the message's limit, not a fixed number.
      expect(policy.overLimit(overLimit({ buffered: 300, size: 101, limit: 100 }).message)).toBe('close');
    });

    it("'drop' means what the drop policy does: low-priority queued messages go first", () => {
      const { policy } = withHandler(() => 'drop');
      const room = overLimit({ buffered: 3000, size: 2000, freed: 1000 });
      expect(policy.overLimit(room.message)).toBe('queue');
      expect(room.dropLowPriority).toHaveBeenCalledTimes(1);
      const noRoom = overLimit({ buffered: 3000, size: 2000, freed: 0 });
      expect(policy.overLimit(noRoom.message)).toBe('drop');
      const low = overLimit({ buffered: 3000, size: 2000, priority: 'low', freed: 3000 });
      expect(policy.overLimit(low.message)).toBe('drop');
      expect(low.dropLowPriority).not.toHaveBeenCalled();
    });

    it("'close' closes", () => {
      const { policy } = withHandler(() => 'close');
      expect(policy.overLimit(overLimit({ buffered: 3000, size: 2000 }).message)).toBe('close');
    });

    it("decides a stall (slowClientTimeout) with cause 'timeout': 'queue' waits, 'drop' drops, 'close' closes", () => {
      for (const [decision, verdict] of [['queue', 'wait'], ['drop', 'drop'], ['close', 'close']] as const) {
        const { policy, slowClient } = withHandler(() => decision);
        expect(policy.stalled(ws, 1234)).toBe(verdict);
        expect(slowClient).toHaveBeenCalledWith(ws, 1234, 'normal', 'timeout');
      }
      const { policy } = withHandler(() => {
        throw new Error('app bug');
      });
      expect(policy.stalled(ws, 1)).toBe('close');
    });

    it('a handler that throws closes the connection, and the error is logged', () => {
      const error = new Error('app bug');
      const { policy, logger } = withHandler(() => {
        throw error;
      });
      expect(policy.overLimit(overLimit({ buffered: 3000, size: 2000 }).message)).toBe('close');
      expect(logger.records).toHaveLength(1);
      expect(logger.records[0]!.level).toBe('error');
      expect(logger.records[0]!.args[0]).toEqual({ err: error });
    });

    it('an answer that is none of the three closes', () => {
      const { policy } = withHandler(() => 'later' as SlowClientDecision);
      expect(policy.overLimit(overLimit({ buffered: 3000, size: 2000 }).message)).toBe('close');
    });
  });

  it('slowClientPolicy picks the strategy for each option value', () => {
    const logger = recordingLogger();
    expect(slowClientPolicy('close', {}, logger)).toBe(closeSlowClients);
    expect(slowClientPolicy('drop', {}, logger)).toBe(dropForSlowClients);
    expect(slowClientPolicy('custom', {}, logger)).toBe(dropForSlowClients);
    const custom = slowClientPolicy('custom', { slowClient: () => 'queue' }, logger);
    expect(custom.overLimit(overLimit({ buffered: 3000, size: 2000 }).message)).toBe('queue');
  });
});
