import { Counter as PromCounter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric } from 'prom-client';
import { Counter, HANDSHAKE_SECONDS, MESSAGE_IN_BYTES, MESSAGE_OUT_BYTES, ServerCounter, type HistogramLayout, type WorkerCounters } from '../shared/worker-counters.ts';

/**
 * The Prometheus endpoint, built with prom-client. It fits worker threads because nothing is
 * counted through it: every value is read at scrape time from the counters all workers keep in
 * shared memory, so whichever thread serves the scrape (the primary's admin listener, or a
 * worker on the public port) reports every worker (label `worker`). Sum over `worker` for
 * server totals. Per-thread runtime figures (event-loop delay, CPU, heap) have a row for the
 * primary too (`worker="primary"`); prom-client's default `process_*` metrics cover the whole
 * process, its `nodejs_*` ones the thread that answered the scrape.
 */
export class MetricsEndpoint {
  readonly #registry = new Registry();

  constructor(counters: WorkerCounters) {
    const workers = counters.workers;
    const registers = [this.#registry];
    collectDefaultMetrics({ register: this.#registry });
    // Every worker's slot, and the primary's (the server slot, after the workers').
    const workerThreads: readonly [label: string, slot: number][] = Array.from({ length: workers }, (_, w) => [String(w), w]);
    const allThreads = [...workerThreads, ['primary', workers] as const];
    const perThread = (
      name: string,
      help: string,
      kind: 'counter' | 'gauge',
      series: readonly [labels: Record<string, string>, counter: Counter][],
      threads: readonly (readonly [label: string, slot: number])[] = allThreads,
    ): void => {
      const labelNames = ['worker', ...Object.keys(series[0]![0])];
      const collect = function (this: PromCounter | Gauge): void {
        this.reset();
        for (const [worker, slot] of threads) {
          for (const [labels, counter] of series) {
            const value = counters.get(slot, counter);
            if (this instanceof Gauge) this.set({ worker, ...labels }, value);
            else (this as PromCounter).inc({ worker, ...labels }, value);
          }
        }
      };
      if (kind === 'gauge') new Gauge({ name, help, labelNames, registers, collect });
      else new PromCounter({ name, help, labelNames, registers, collect });
    };
    perThread('shardws_eventloop_delay_seconds', 'Event-loop delay per thread over the last completed 5 s window, by quantile (1: the maximum).', 'gauge', [
      [{ quantile: '0.5' }, Counter.LoopDelayP50],
      [{ quantile: '0.99' }, Counter.LoopDelayP99],
      [{ quantile: '1' }, Counter.LoopDelayMax],
    ]);
    perThread('shardws_eventloop_delay_mean_seconds', 'Mean event-loop delay per thread over the last completed 5 s window.', 'gauge', [[{}, Counter.LoopDelayMean]]);
    perThread('shardws_eventloop_busy_seconds_total', 'Time each thread\'s event loop spent busy; its rate is the thread\'s utilization (0 to 1).', 'counter', [[{}, Counter.LoopBusySeconds]]);
    perThread('shardws_thread_cpu_seconds_total', 'CPU time of each thread, user and system.', 'counter', [
      [{ mode: 'user' }, Counter.CpuUserSeconds],
      [{ mode: 'system' }, Counter.CpuSystemSeconds],
    ]);
    perThread('shardws_heap_used_bytes', "Bytes used in each thread's V8 heap.", 'gauge', [[{}, Counter.HeapUsedBytes]]);
    perThread('shardws_heap_total_bytes', "Bytes of each thread's V8 heap.", 'gauge', [[{}, Counter.HeapTotalBytes]]);
    const histogram = (name: string, help: string, series: readonly [labels: Record<string, string>, layout: HistogramLayout][]): void => {
      const metric = {
        name,
        help,
        type: 'histogram',
        aggregator: 'sum',
        get: async () => {
          const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
          for (let worker = 0; worker < workers; worker++) {
            for (const [labels, layout] of series) {
              const { cumulative, sum } = counters.histogram(worker, layout);
              const base = { worker: String(worker), ...labels };
              layout.bounds.forEach((bound, i) => values.push({ labels: { ...base, le: bound }, value: cumulative[i]!, metricName: `${name}_bucket` }));
              values.push({ labels: { ...base, le: '+Inf' }, value: cumulative.at(-1)!, metricName: `${name}_bucket` });
              values.push({ labels: base, value: sum, metricName: `${name}_sum` }, { labels: base, value: cumulative.at(-1)!, metricName: `${name}_count` });
            }
          }
          return { name, help, type: 'histogram', aggregator: 'sum', values };
        },
        reset: () => {},
      };
      this.#registry.registerMetric(metric as unknown as Metric);
    };
    histogram('shardws_handshake_duration_seconds', 'From a socket reaching its worker to the 101 written, for upgrades accepted.', [[{}, HANDSHAKE_SECONDS]]);
    histogram('shardws_message_size_bytes', 'WebSocket message sizes: in, as the app gets them; out, the payload before compression (a publish framed once for many: its frame).', [
      [{ direction: 'in' }, MESSAGE_IN_BYTES],
      [{ direction: 'out' }, MESSAGE_OUT_BYTES],
    ]);
    // The worker counters have no row for the primary: its slot holds other things below LoopDelayMean.
    const perWorker = (name: string, help: string, counter: Counter, kind: 'counter' | 'gauge'): void =>
      perThread(name, help, kind, [[{}, counter]], workerThreads);
    perWorker('shardws_connections', 'Open WebSocket connections.', Counter.Connections, 'gauge');
    perWorker('shardws_handshakes_in_progress', 'Sockets that have not completed their first request.', Counter.Handshakes, 'gauge');
    perWorker('shardws_buffered_bytes', 'Bytes accepted by send() and not yet written to the kernel.', Counter.BufferedBytes, 'gauge');
    perWorker('shardws_handshakes_total', 'Upgrade requests handled.', Counter.HandshakesTotal, 'counter');
    perWorker('shardws_handshakes_rejected_total', 'Upgrade requests refused.', Counter.HandshakesRejected, 'counter');
    perWorker('shardws_messages_received_total', 'WebSocket messages received.', Counter.MessagesIn, 'counter');
    perWorker('shardws_messages_sent_total', 'WebSocket messages sent.', Counter.MessagesOut, 'counter');
    perWorker('shardws_received_bytes_total', 'Bytes read from sockets.', Counter.BytesIn, 'counter');
    perWorker('shardws_sent_bytes_total', 'Bytes written to sockets.', Counter.BytesOut, 'counter');
    perWorker('shardws_backpressure_events_total', 'Sends that found the socket above its high-water mark.', Counter.BackpressureEvents, 'counter');
    perWorker('shardws_dropped_messages_total', 'Messages dropped by the slow-client policy.', Counter.Drops, 'counter');
    perWorker('shardws_protocol_errors_total', 'Connections failed for a protocol violation.', Counter.ProtocolErrors, 'counter');
    perWorker('shardws_deflate_input_bytes_total', 'Bytes given to permessage-deflate.', Counter.DeflateBytesIn, 'counter');
    perWorker('shardws_deflate_output_bytes_total', 'Bytes permessage-deflate produced.', Counter.DeflateBytesOut, 'counter');
    perWorker('shardws_publishes_total', 'Publishes made on this worker.', Counter.PublishesOut, 'counter');
    perWorker('shardws_peer_publishes_total', 'Publishes received from other workers.', Counter.PublishesIn, 'counter');

    const closeCodes: [string, Counter][] = [
      ['1000', Counter.Closes1000],
      ['1001', Counter.Closes1001],
      ['1002', Counter.Closes1002],
      ['1003', Counter.Closes1003],
      ['1006', Counter.Closes1006],
      ['1007', Counter.Closes1007],
      ['1008', Counter.Closes1008],
      ['1009', Counter.Closes1009],
      ['1011', Counter.Closes1011],
      ['other', Counter.ClosesOther],
    ];
    new PromCounter({
      name: 'shardws_closes_total',
      help: 'Connections closed, by the close code exchanged (1006: none).',
      labelNames: ['worker', 'code'],
      registers,
      collect() {
        this.reset();
        for (let worker = 0; worker < workers; worker++) {
          for (const [code, counter] of closeCodes) this.inc({ worker: String(worker), code }, counters.get(worker, counter));
        }
      },
    });
    new Gauge({
      name: 'shardws_compression_ratio',
      help: 'Bytes before permessage-deflate per byte after, over the server lifetime.',
      registers,
      collect() {
        let input = 0;
        let output = 0;
        for (let worker = 0; worker < workers; worker++) {
          input += counters.get(worker, Counter.DeflateBytesIn);
          output += counters.get(worker, Counter.DeflateBytesOut);
        }
        this.set(output === 0 ? 0 : input / output);
      },
    });
    new PromCounter({
      name: 'shardws_worker_restarts_total',
      help: 'Workers replaced after exiting or missing their heartbeat.',
      registers,
      collect() {
        this.reset();
        this.inc(counters.server[ServerCounter.Restarts]!);
      },
    });
    new PromCounter({
      name: 'shardws_connections_refused_total',
      help: 'Sockets refused before any request (maxConnections, no worker ready).',
      registers,
      collect() {
        this.reset();
        let refused = counters.server[ServerCounter.Refused]!;
        for (let worker = 0; worker < workers; worker++) refused += counters.get(worker, Counter.Refused);
        this.inc(refused);
      },
    });
    new Gauge({ name: 'shardws_workers', help: 'Worker threads configured.', registers, collect() { this.set(workers); } });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  text(): Promise<string> {
    return this.#registry.metrics();
  }
}
