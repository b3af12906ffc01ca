/** The markdown summary of a BenchResult, for people (`--json` prints the result as is). */
import type { BenchResult } from './run-load.ts';

const number = (n: number): string => n.toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(3)} ms`;

export function formatMarkdown(r: BenchResult): string {
  const s = r.settings;
  const rows: [string, string][] = [];
  const what =
    r.mode === 'connect'
      ? `${number(s.connections)} connections, held ${s.duration} s`
      : `${number(s.connections)} ${r.mode === 'broadcast' ? 'subscribers + 1 publisher' : 'connections'}, ` +
        `${s.inFlight} in flight, ${number(s.size)} B ${s.kind}${s.deflate ? ', permessage-deflate' : ''}` +
        `${s.fastMask ? ', fast mask' : ''}${s.rawEcho ? ', raw TCP echo' : ''}`;
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
  const lines = [`## shardws bench ${r.url}`, '', '| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
  if (r.errorSamples.length > 0) {
    lines.push('', 'Errors:');
    for (const [text, count] of r.errorSamples) lines.push(`- ${number(count)} × ${text}`);
  }
  if (r.notes.length > 0) {
    lines.push('', 'Notes:');
    for (const note of r.notes) lines.push(`- ${note}`);
  }
  return `${lines.join('\n')}\n`;
}
