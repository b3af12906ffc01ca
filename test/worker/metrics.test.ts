import { describe, it, expect } from 'vitest';
import { Counter, ServerCounter, WorkerCounters } from '../../src/shared/worker-counters.ts';
import { MetricsEndpoint } from '../../src/worker/metrics.ts';

/** `name{labels} value` lines of an exposition, as a map (comments left out). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** Metric name → type, from the `# TYPE` lines. */
function types(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out[name!] = type!;
  return out;
}

const PER_WORKER: [string, Counter, 'gauge' | 'counter'][] = [
  ['shardws_connections', Counter.Connections, 'gauge'],
  ['shardws_handshakes_in_progress', Counter.Handshakes, 'gauge'],
  ['shardws_buffered_bytes', Counter.BufferedBytes, 'gauge'],
  ['shardws_handshakes_total', Counter.HandshakesTotal, 'counter'],
  ['shardws_handshakes_rejected_total', Counter.HandshakesRejected, 'counter'],
  ['shardws_messages_received_total', Counter.MessagesIn, 'counter'],
  ['shardws_messages_sent_total', Counter.MessagesOut, 'counter'],
  ['shardws_received_bytes_total', Counter.BytesIn, 'counter'],
  ['shardws_sent_bytes_total', Counter.BytesOut, 'counter'],
  ['shardws_backpressure_events_total', Counter.BackpressureEvents, 'counter'],
  ['shardws_dropped_messages_total', Counter.Drops, 'counter'],
  ['shardws_protocol_errors_total', Counter.ProtocolErrors, 'counter'],
  ['shardws_deflate_input_bytes_total', Counter.DeflateBytesIn, 'counter'],
  ['shardws_deflate_output_bytes_total', Counter.DeflateBytesOut, 'counter'],
  ['shardws_publishes_total', Counter.PublishesOut, 'counter'],
  ['shardws_peer_publishes_total', Counter.PublishesIn, 'counter'],
];

describe('MetricsEndpoint', () => {
  it('exposes every metric with its type', async () => {
    const text = await new MetricsEndpoint(new WorkerCounters(2)).text();
    expect(types(text)).toEqual({
      ...Object.fromEntries(PER_WORKER.map(([name, , type]) => [name, type])),
      shardws_closes_total: 'counter',
      shardws_compression_ratio: 'gauge',
      shardws_worker_restarts_total: 'counter',
      shardws_connections_refused_total: 'counter',
      shardws_workers: 'gauge',
    });
  });

  it('reads each per-worker metric from that worker’s slot, labelled with its index', async () => {
    const counters = new WorkerCounters(2);
    PER_WORKER.forEach(([, counter], i) => {
      counters.slot(0)[counter] = 10 + i;
      counters.slot(1)[counter] = 1000 + i;
    });
    const values = samples(await new MetricsEndpoint(counters).text());
    PER_WORKER.forEach(([name], i) => {
      expect(values.get(`${name}{worker="0"}`), name).toBe(10 + i);
      expect(values.get(`${name}{worker="1"}`), name).toBe(1000 + i);
    });
    expect(values.get('shardws_workers')).toBe(2);
  });

  it('reports what the counters hold at each scrape, not a running sum of scrapes', async () => {
    const counters = new WorkerCounters(1);
    const metrics = new MetricsEndpoint(counters);
    counters.slot(0)[Counter.MessagesIn] = 5;
    counters.slot(0)[Counter.Connections] = 2;
    counters.slot(0)[Counter.Closes1000] = 1;
    counters.server[ServerCounter.Restarts] = 1;
    await metrics.text();
    counters.slot(0)[Counter.MessagesIn] = 8;
    counters.slot(0)[Counter.Connections] = 1;
    const values = samples(await metrics.text());
    expect(values.get('shardws_messages_received_total{worker="0"}')).toBe(8);
    expect(values.get('shardws_connections{worker="0"}')).toBe(1);
    expect(values.get('shardws_closes_total{worker="0",code="1000"}')).toBe(1);
    expect(values.get('shardws_worker_restarts_total')).toBe(1);
  });

  it('counts closes by worker and code, 1006 and the other codes included', async () => {
    const counters = new WorkerCounters(2);
    counters.slot(0)[Counter.Closes1001] = 2;
    counters.slot(1)[Counter.Closes1006] = 3;
    counters.slot(1)[Counter.ClosesOther] = 4;
    const values = samples(await new MetricsEndpoint(counters).text());
    expect(values.get('shardws_closes_total{worker="0",code="1001"}')).toBe(2);
    expect(values.get('shardws_closes_total{worker="1",code="1006"}')).toBe(3);
    expect(values.get('shardws_closes_total{worker="1",code="other"}')).toBe(4);
    expect(values.get('shardws_closes_total{worker="0",code="1000"}')).toBe(0);
    const codes = [...values.keys()].filter((k) => k.startsWith('shardws_closes_total{worker="0"'));
    expect(codes).toHaveLength(10);
  });

  it('derives server-wide figures: compression ratio, restarts, refusals by the primary and by workers', async () => {
    const counters = new WorkerCounters(2);
    const metrics = new MetricsEndpoint(counters);
    expect(samples(await metrics.text()).get('shardws_compression_ratio')).toBe(0);
    counters.slot(0)[Counter.DeflateBytesIn] = 300;
    counters.slot(0)[Counter.DeflateBytesOut] = 50;
    counters.slot(1)[Counter.DeflateBytesIn] = 100;
    counters.slot(1)[Counter.DeflateBytesOut] = 50;
    counters.server[ServerCounter.Restarts] = 3;
    counters.server[ServerCounter.Refused] = 5;
    counters.slot(1)[Counter.Refused] = 2;
    const values = samples(await metrics.text());
    expect(values.get('shardws_compression_ratio')).toBe(4);
    expect(values.get('shardws_worker_restarts_total')).toBe(3);
    expect(values.get('shardws_connections_refused_total')).toBe(7);
  });

  it('keeps its own registry: two endpoints coexist and report their own counters', async () => {
    const a = new WorkerCounters(1);
    const b = new WorkerCounters(3);
    a.slot(0)[Counter.Connections] = 1;
    b.slot(0)[Counter.Connections] = 9;
    const first = new MetricsEndpoint(a);
    const second = new MetricsEndpoint(b);
    expect(first.contentType).toMatch(/^text\/plain/);
    expect(samples(await first.text()).get('shardws_connections{worker="0"}')).toBe(1);
    const values = samples(await second.text());
    expect(values.get('shardws_connections{worker="0"}')).toBe(9);
    expect(values.get('shardws_workers')).toBe(3);
  });
});
