import { isatty } from 'node:tty';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogFormat, LogLevel } from '../shared/config.ts';
import { prettyStream } from './pretty-log.ts';

/** `auto` made concrete: pretty when file descriptor 1 is a terminal (asked of the fd, so it works in any thread). */
export function concreteLogFormat(format: LogFormat | undefined): Exclude<LogFormat, 'auto'> {
  if (format === 'json' || format === 'pretty') return format;
  return isatty(1) ? 'pretty' : 'json';
}

/**
 * One pino logger per thread, writing synchronously to stdout: log lines are rare (connections
 * failing, workers restarting, never per message), and synchronous writes cannot be lost when a
 * worker thread exits. `pretty` colours the level when stdout is a terminal and NO_COLOR is unset.
 */
export function createLogger(level: LogLevel, format: Exclude<LogFormat, 'auto'>, bindings: Record<string, unknown> = {}): Logger {
  const stdout = pino.destination({ dest: 1, sync: true });
  const destination = format === 'pretty' ? prettyStream(stdout, isatty(1) && !process.env.NO_COLOR) : stdout;
  return pino({ level, base: { pid: process.pid, ...bindings } }, destination);
}

export type { Logger };
