import { describe, expect, it } from 'vitest';
import { TopicRecovery } from '../../src/worker/topic-recovery.ts';

/** A connection that records what reaches it: replayed ids and live frames (their text is the id). */
function setup() {
  const sent: string[] = [];
  const recovery = new TopicRecovery<string, Buffer>({ sendFrames: (connection, frame) => sent.push(`${connection} live ${frame.toString()}`) });
  const live = (connection: string, id: string) => recovery.live('t', connection, id, Buffer.from(id));
  const replay = (connection: string, ids: string[]) => {
    const announced: number[] = [];
    const fresh = recovery.replayed(
      't',
      connection,
      ids.map((id) => ({ id })),
      (count) => announced.push(count),
      (entry) => sent.push(`${connection} replay ${entry.id}`),
    );
    return { fresh, announced };
  };
  return { recovery, sent, live, replay };
}

describe('TopicRecovery', () => {
  it('holds live entries until the replay is sent, then sends only those after it: no gap, no duplicate', () => {
    const { recovery, sent, live, replay } = setup();
    recovery.begin('t', 'c', '1-0');
    expect(recovery.of('t')?.has('c')).toBe(true);
    live('c', '3-0');
    live('c', '4-0');
    expect(sent).toEqual([]);
    // The replay (read after the subscription began) overlaps the live entries.
    expect(replay('c', ['1-0', '2-0', '3-0'])).toEqual({ fresh: 2, announced: [2] });
    expect(sent).toEqual(['c replay 2-0', 'c replay 3-0', 'c live 4-0']);
    // Live has passed the replay: the connection is an ordinary subscriber again.
    expect(recovery.of('t')).toBeUndefined();
  });

  it('skips live entries the replay already sent, until live passes it', () => {
    const { recovery, sent, live, replay } = setup();
    recovery.begin('t', 'c', '1-0');
    // The replay read further than live had come.
    replay('c', ['2-0', '3-0', '4-0']);
    live('c', '3-0');
    live('c', '4-0');
    expect(recovery.of('t')?.has('c')).toBe(true);
    live('c', '5-0');
    live('c', '6-0');
    expect(sent).toEqual(['c replay 2-0', 'c replay 3-0', 'c replay 4-0', 'c live 5-0']);
    expect(recovery.of('t')).toBeUndefined();
  });

  it('lets the app speak before the replay, and stops if it closed the connection meanwhile', () => {
    const { recovery, sent, replay } = setup();
    recovery.begin('t', 'c', '0-0');
    const announced: number[] = [];
    recovery.replayed(
      't',
      'c',
      [{ id: '1-0' }],
      (count) => {
        announced.push(count);
        recovery.forget('t', 'c');
      },
      (entry) => sent.push(entry.id),
    );
    expect(announced).toEqual([1]);
    expect(sent).toEqual([]);
    // A replay for a connection that no longer recovers is ignored.
    expect(replay('c', ['1-0']).fresh).toBe(-1);
  });

  it('keeps each connection apart', () => {
    const { recovery, sent, live, replay } = setup();
    recovery.begin('t', 'a', '1-0');
    recovery.begin('t', 'b', '2-0');
    live('a', '3-0');
    live('b', '3-0');
    replay('b', ['3-0']);
    expect(sent).toEqual(['b replay 3-0']);
    replay('a', ['2-0', '3-0']);
    expect(sent).toEqual(['b replay 3-0', 'a replay 2-0', 'a replay 3-0']);
    live('a', '4-0');
    live('b', '4-0');
    expect(sent.slice(3)).toEqual(['a live 4-0', 'b live 4-0']);
  });
});
