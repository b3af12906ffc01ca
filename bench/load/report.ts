/**
 * A BenchResult for people: a plain aligned table for the terminal (the default), or markdown
 * (`--markdown`); `--json` prints the result as is. Both tables have the same rows.
 */
import type { BenchResult } from './run-load.ts';

const number = (n: number): string => n.toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(3)} ms`;

/** The rows both tables show, label and value. */
function summaryRows(r: BenchResult): [string, string][] {
  const s = r.settings;
  const rows: [string, string][] = [];
  const what =
    r.mode === 'connect'
      ? `${number(s.connections)} connections, held ${s.duration} s`
      : `${number(s.connections)} ${r.mode === 'broadcast' ? 'subscribers + 1 publisher' : 'connections'}, ` +
        `${s.inFlight} in flight, ${number(s.size)} B ${s.kind}${s.deflate ? ', permessage-deflate' : ''}` +
        `${s.fastMask ? ', fast mask' : ''}${s.rawEcho ? ', raw TCP echo' : ''}${s.http2 ? ', over HTTP/2 (RFC 8441)' : ''}`;
  rows.push(['workload', `${r.mode}: ${what}`]);
  rows.push(['generator', `${r.threads} thread(s), ${r.generatorCpuPercent}% of one core`]);
  if (r.serverCpuPercent !== null) rows.push(['server CPU', `${r.serverCpuPercent}% of one core`]);
  rows.push(['connections', `${number(r.connections.opened)} opened, ${number(r.connections.failed)} failed, ${number(r.connections.held)} held at the end`]);
  if (r.mode === 'connect') {
    rows.push(['handshakes/s', r.handshakesPerSecond === null ? 'n/a' : number(r.handshakesPerSecond)]);
    const h = r.handshakeLatency;
    rows.push(['handshake p50 / p99 / p99.9', `${ms(h.p50)} / ${ms(h.p99)} / ${ms(h.p999)}`]);
    if (r.serverRssBeforeKiB !== null) {
      rows.push(['server RSS', `${number(r.serverRssBeforeKiB)} KiB before, ${number(r.serverRssAfterKiB ?? 0)} KiB after`]);
      rows.push(['server RSS per connection', r.serverRssPerConnectionKiB === null ? 'n/a' : `${r.serverRssPerConnectionKiB} KiB`]);
    }
  } else {
    rows.push(['measured', `${r.measuredSeconds.toFixed(2)} s after ${s.warmup} s warm-up`]);
    rows.push([r.mode === 'broadcast' ? 'deliveries/s' : 'messages/s', number(r.messagesPerSecond)]);
    if (r.publishesPerSecond !== null) rows.push(['publishes/s', number(r.publishesPerSecond)]);
    rows.push(['MB/s (payload received)', r.megabytesPerSecond.toFixed(2)]);
    const l = r.latency;
    rows.push([`${r.mode === 'broadcast' ? 'delivery' : 'round-trip'} latency p50 / p99 / p99.9`, `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.p999)}`]);
    rows.push(['latency min / mean / max', `${ms(l.min)} / ${ms(l.mean)} / ${ms(l.max)}`]);
  }
  rows.push(['errors', number(r.errors)]);
  if (r.mode === 'broadcast') rows.push(['lost', number(r.lost)]);
  return rows;
}

/** The errors and notes under a table, as list items. */
function remarks(r: BenchResult, bullet: string): string[] {
  const lines: string[] = [];
  if (r.errorSamples.length > 0) {
    lines.push('', 'Errors:');
    for (const [text, count] of r.errorSamples) lines.push(`${bullet}${number(count)} × ${text}`);
  }
  if (r.notes.length > 0) {
    lines.push('', 'Notes:');
    for (const note of r.notes) lines.push(`${bullet}${note}`);
  }
  return lines;
}

export function formatMarkdown(r: BenchResult): string {
  const rows = summaryRows(r);
  const lines = [`## shardws bench ${r.url}${r.interrupted ? ' (interrupted)' : ''}`, '', '| measure | value |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
  return `${[...lines, ...remarks(r, '- ')].join('\n')}\n`;
}

/** The terminal table: labels right-aligned against their values, a warning line when generator-bound. */
export function formatTable(r: BenchResult, colors = false): string {
  const rows = summaryRows(r);
  const width = Math.max(...rows.map(([k]) => k.length));
  const bold = (text: string): string => (colors ? `\x1b[1m${text}\x1b[0m` : text);
  const lines = [bold(`shardws bench ${r.url}${r.interrupted ? '  (interrupted: partial results)' : ''}`), ''];
  for (const [k, v] of rows) lines.push(`  ${k.padStart(width)}  ${v}`);
  if (r.generatorBound) lines.push('', `${colors ? '\x1b[33mwarning\x1b[0m' : 'warning'}: the generator was busy the whole run; these figures may be its limit, not the server's (see the note)`);
  return `${[...lines, ...remarks(r, '  - ')].join('\n')}\n`;
}
