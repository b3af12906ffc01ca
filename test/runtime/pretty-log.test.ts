import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { prettyLine, prettyStream } from '../../src/runtime/pretty-log.ts';

const at = new Date(2026, 0, 2, 3, 4, 5, 67).getTime();
const record = (fields: Record<string, unknown>): string => `${JSON.stringify({ level: 30, time: at, pid: 1, ...fields })}\n`;

describe('prettyLine', () => {
  it('shows time, level, thread and message, then the other fields as key=value', () => {
    expect(prettyLine(record({ role: 'primary', msg: 'listening on http://localhost:8080', port: 8080, workers: 2 }), false)).toBe(
      '03:04:05.067 INFO  primary listening on http://localhost:8080  port=8080 workers=2\n',
    );
    // A worker's own logger names its thread; the primary's records keep `worker` as a field.
    expect(prettyLine(record({ worker: 3, msg: 'slow client', remote: '10.0.0.1' }), false)).toBe('03:04:05.067 INFO  w3      slow client  remote=10.0.0.1\n');
    expect(prettyLine(record({ role: 'primary', worker: 3, msg: 'worker ready' }), false)).toContain('primary worker ready  worker=3');
  });

  it('quotes values with spaces and shows objects as JSON', () => {
    expect(prettyLine(record({ msg: 'm', reason: 'server is starting', headers: { a: 1 } }), false)).toContain('reason="server is starting" headers={"a":1}');
  });

  it("adds an error's message to the line and its frames below", () => {
    const line = prettyLine(record({ level: 50, msg: 'worker threw', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at f (/srv/app.ts:3:9)\n    at g (/srv/app.ts:9:1)' } }), false);
    expect(line).toBe('03:04:05.067 ERROR         worker threw: boom\n    at f (/srv/app.ts:3:9)\n    at g (/srv/app.ts:9:1)\n');
  });

  it('colours the level only when asked', () => {
    expect(prettyLine(record({ level: 40, msg: 'w' }), true)).toContain('\x1b[33mWARN \x1b[0m');
    expect(prettyLine(record({ level: 40, msg: 'w' }), false)).not.toContain('\x1b[');
  });

  it('passes a line that is not JSON through', () => {
    expect(prettyLine('plain text', false)).toBe('plain text\n');
  });
});

describe('prettyStream', () => {
  it('is a pino destination: one pretty line per record', () => {
    const written: string[] = [];
    const logger = pino({ base: { role: 'primary' } }, prettyStream({ write: (text: string) => written.push(text) }, false));
    logger.info({ port: 1 }, 'hello');
    logger.debug('hidden at info');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  primary hello  port=1\n$/);
  });
});
