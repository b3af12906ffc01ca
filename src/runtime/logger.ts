import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogLevel } from '../shared/config.ts';

/**
 * One pino logger per thread, writing synchronously to stdout: log lines are rare (connections
 * failing, workers restarting, never per message), and synchronous writes cannot be lost when a
 * worker thread exits.
 */
export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } }, pino.destination({ dest: 1, sync: true }));
}

export type { Logger };
