import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { Counter, HANDSHAKE_SECONDS, ServerCounter, WorkerCounters, recordSize, recordValue } from '../../src/shared/worker-counters.ts';
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

/** Per-thread runtime metrics: name, extra labels, the counter, the type. */
const PER_THREAD: [string, string, Counter, 'gauge' | 'counter'][] = [
  ['shardws_eventloop_delay_seconds', 'quantile="0.5"', Counter.LoopDelayP50, 'gauge'],
  ['shardws_eventloop_delay_seconds', 'quantile="0.99"', Counter.LoopDelayP99, 'gauge'],
  ['shardws_eventloop_delay_seconds', 'quantile="1"', Counter.LoopDelayMax, 'gauge'],
  ['shardws_eventloop_delay_mean_seconds', '', Counter.LoopDelayMean, 'gauge'],
  ['shardws_eventloop_busy_seconds_total', '', Counter.LoopBusySeconds, 'counter'],
  ['shardws_thread_cpu_seconds_total', 'mode="user"', Counter.CpuUserSeconds, 'counter'],
  ['shardws_thread_cpu_seconds_total', 'mode="system"', Counter.CpuSystemSeconds, 'counter'],
  ['shardws_heap_used_bytes', '', Counter.HeapUsedBytes, 'gauge'],
  ['shardws_heap_total_bytes', '', Counter.HeapTotalBytes, 'gauge'],
];

describe('MetricsEndpoint', () => {
  it('exposes every metric with its type', async () => {
    const text = await new MetricsEndpoint(new WorkerCounters(2)).text();
    const ours = Object.fromEntries(Object.entries(types(text)).filter(([name]) => name.startsWith('shardws_')));
    expect(ours).toEqual({
      ...Object.fromEntries(PER_WORKER.map(([name, , type]) => [name, type])),
      ...Object.fromEntries(PER_THREAD.map(([name, , , type]) => [name, type])),
      shardws_closes_total: 'counter',
      shardws_compression_ratio: 'gauge',
      shardws_worker_restarts_total: 'counter',
      shardws_connections_refused_total: 'counter',
      shardws_workers: 'gauge',
      shardws_handshake_duration_seconds: 'histogram',
      shardws_message_size_bytes: 'histogram',
    });
    // prom-client's defaults: the process as a whole, Node in the thread that answers.
    expect(types(text)).toMatchObject({ process_cpu_seconds_total: 'counter', process_resident_memory_bytes: 'gauge', nodejs_eventloop_lag_p99_seconds: 'gauge' });
  });

  it('has a row for every worker and the primary in the per-thread runtime metrics', async () => {
    const counters = new WorkerCounters(2);
    PER_THREAD.forEach(([, , counter], i) => {
      counters.slot(0)[counter] = 10 + i;
      counters.slot(1)[counter] = 100 + i;
      counters.server[counter] = 1000 + i;
    });
    const got = samples(await new MetricsEndpoint(counters).text());
    PER_THREAD.forEach(([name, labels, , ], i) => {
      const extra = labels === '' ? '' : `,${labels}`;
      expect(got.get(`${name}{worker="0"${extra}}`), name).toBe(10 + i);
      expect(got.get(`${name}{worker="1"${extra}}`), name).toBe(100 + i);
      expect(got.get(`${name}{worker="primary"${extra}}`), name).toBe(1000 + i);
    });
    // The per-worker counters have no primary row (its slot holds other things there).
    expect([...got.keys()].some((key) => key.startsWith('shardws_connections{worker="primary"'))).toBe(false);
  });

  it('exposes the histograms in the Prometheus shape: cumulative buckets, +Inf, _sum and _count', async () => {
    const counters = new WorkerCounters(2);
    for (const seconds of [0.0002, 0.004, 0.004, 3]) recordValue(counters.slot(1), HANDSHAKE_SECONDS, seconds);
    for (const size of [10, 100, 100_000]) recordSize(counters.slot(0), Counter.MessageInBytes, size);
    recordSize(counters.slot(0), Counter.MessageOutBytes, 5000);
    const got = samples(await new MetricsEndpoint(counters).text());
    const h = 'shardws_handshake_duration_seconds';
    expect(got.get(`${h}_bucket{worker="1",le="0.0005"}`)).toBe(1);
    expect(got.get(`${h}_bucket{worker="1",le="0.005"}`)).toBe(3);
    expect(got.get(`${h}_bucket{worker="1",le="2.5"}`)).toBe(3);
    expect(got.get(`${h}_bucket{worker="1",le="5"}`)).toBe(4);
    expect(got.get(`${h}_bucket{worker="1",le="+Inf"}`)).toBe(4);
    expect(got.get(`${h}_count{worker="1"}`)).toBe(4);
    expect(got.get(`${h}_sum{worker="1"}`)).toBeCloseTo(3.0082, 6);
    expect(got.get(`${h}_count{worker="0"}`)).toBe(0);
    const m = 'shardws_message_size_bytes';
    expect(got.get(`${m}_bucket{worker="0",direction="in",le="64"}`)).toBe(1);
    expect(got.get(`${m}_bucket{worker="0",direction="in",le="256"}`)).toBe(2);
    expect(got.get(`${m}_bucket{worker="0",direction="in",le="262144"}`)).toBe(3);
    expect(got.get(`${m}_sum{worker="0",direction="in"}`)).toBe(100_110);
    expect(got.get(`${m}_count{worker="0",direction="out"}`)).toBe(1);
    expect(got.get(`${m}_bucket{worker="0",direction="out",le="4096"}`)).toBe(0);
    expect(got.get(`${m}_bucket{worker="0",direction="out",le="16384"}`)).toBe(1);
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

describe('docs/grafana-dashboard.json', () => {
  it('queries only metrics the endpoint exports, and shows the per-thread event-loop delay', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const text = await new MetricsEndpoint(new WorkerCounters(2)).text();
    const exported = new Set<string>();
    for (const [name, type] of Object.entries(types(text))) {
      exported.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name + suffix);
    }
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) for (const [name] of expr.matchAll(/\b(?:shardws|process|nodejs)_[a-z_]+\b/g)) queried.add(name);
    }
    expect(queried.size).toBeGreaterThan(15);
    for (const name of queried) expect(exported.has(name), name).toBe(true);
    expect(dashboard.panels.some((p) => p.targets.some((t) => t.expr.includes('shardws_eventloop_delay_seconds{quantile="0.99"')))).toBe(true);
  });
});
