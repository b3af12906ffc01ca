import { describe, expect, it } from 'vitest';
import { PresenceTable } from '../../src/shared/presence-table.ts';
import { WorkerPresence } from '../../src/worker/worker-presence.ts';
import { recordingLogger } from '../support/fake-socket.ts';
import { silentLogger } from '../support/worker-fakes.ts';

describe('WorkerPresence', () => {
  it('counts its connections into its own column, locking only for a key\'s first and last', () => {
    const table = PresenceTable.create(16, 2);
    const mine = new WorkerPresence(table, 1, silentLogger());
    const theirs = new WorkerPresence(table, 0, silentLogger());
    mine.hold('topic', 'room');
    mine.hold('topic', 'room');
    theirs.hold('topic', 'room');
    expect(mine.count('topic', 'room', 2)).toBe(3);
    expect(mine.workersWith('topic', 'room')).toEqual([0, 1]);
    mine.release('topic', 'room', false);
    mine.release('topic', 'room', true);
    expect(theirs.count('topic', 'room', 1)).toBe(1);
    expect(mine.workersWith('topic', 'room')).toEqual([0]);
    // Releasing a key it never held changes nothing.
    mine.release('topic', 'nothing', true);
    expect(table.count('topic', 'room')).toBe(1);
  });

  it('past a full table serves the key locally, adds its local share to counts, warns once, and sends tags to every worker', () => {
    const table = PresenceTable.create(16, 1);
    const logger = recordingLogger();
    const presence = new WorkerPresence(table, 0, logger);
    for (let i = 0; i < 16; i++) presence.hold('tag', `t${i}`);
    presence.hold('topic', 'late');
    presence.hold('topic', 'later');
    expect(presence.uncounted('topic', 'late')).toBe(true);
    expect(presence.count('topic', 'late', 1)).toBe(1);
    expect(presence.workersWith('tag', 't0')).toBeNull();
    expect(logger.records.filter((r) => r.level === 'warn' && String(r.args.at(-1)).includes('presence table full'))).toHaveLength(1);
    presence.release('topic', 'late', true);
    expect(presence.uncounted('topic', 'late')).toBe(false);
  });
});
