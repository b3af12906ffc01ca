/**
 * The `pretty` log format: pino's JSON records turned into one line each for a person at a
 * terminal, `12:34:56.789 INFO  w1  message  key=value …`, with an error's stack indented below.
 * A few dozen lines instead of pino-pretty (and its thirteen dependencies): shardws logs only
 * rare events, so parsing the record back costs nothing that matters, and the format is ours.
 */

interface Sink {
  write(text: string): unknown;
}

const LEVELS: Readonly<Record<number, readonly [name: string, color: string]>> = {
  10: ['TRACE', '90'],
  20: ['DEBUG', '36'],
  30: ['INFO ', '32'],
  40: ['WARN ', '33'],
  50: ['ERROR', '31'],
  60: ['FATAL', '41;97'],
};

/** Fields every record has, shown in the line's fixed columns rather than as key=value. */
const SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'role', 'err']);

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function clock(ms: number): string {
  const t = new Date(ms);
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

/** A value as it reads best after `key=`: bare when it has no space or quote, JSON otherwise. */
function show(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
}

/** One pino record (a JSON line) as the pretty line; what is not JSON passes through as is. */
export function prettyLine(json: string, colors: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const paint = (code: string, text: string): string => (colors ? `\x1b[${code}m${text}\x1b[0m` : text);
  const [name, color] = LEVELS[record.level as number] ?? [String(record.level).padEnd(5), '0'];
  // The thread: the primary, or the worker whose logger wrote it (the primary names workers as a field).
  const thread = record.role === 'primary' ? 'primary' : record.worker !== undefined ? `w${String(record.worker)}` : '';
  const fields: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (SHOWN.has(key) || (key === 'worker' && record.role !== 'primary')) continue;
    fields.push(`${key}=${show(value)}`);
  }
  const err = record.err as { type?: string; message?: string; stack?: string } | undefined;
  let line = `${paint('2', clock(record.time as number))} ${paint(color, name)} ${thread.padEnd(7)} ${String(record.msg ?? '')}`;
  if (err !== undefined) line += `: ${err.message ?? ''}`;
  if (fields.length > 0) line += `  ${paint('2', fields.join(' '))}`;
  line += '\n';
  // The stack's first line repeats the message: only its frames go below.
  if (err?.stack !== undefined) {
    const frames = err.stack.split('\n').filter((l) => /^\s+at /.test(l));
    if (frames.length > 0) line += `${paint('2', frames.map((f) => `    ${f.trim()}`).join('\n'))}\n`;
  }
  return line;
}

/** A pino destination that writes each record to `sink` as its pretty line. */
export function prettyStream(sink: Sink, colors: boolean): Sink {
  return { write: (json: string) => sink.write(prettyLine(json, colors)) };
}
