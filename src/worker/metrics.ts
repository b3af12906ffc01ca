import { Counter as PromCounter, Gauge, Registry } from 'prom-client';
import { Counter, ServerCounter, type WorkerCounters } from '../shared/worker-counters.ts';

/**
 * The Prometheus endpoint, built with prom-client. It fits worker threads because nothing is
 * counted through it: every value is read at scrape time from the counters all workers keep in
 * shared memory, so whichever worker serves the scrape reports every worker (label `worker`).
 * Sum over `worker` for server totals.
 */
export class MetricsEndpoint {
  readonly #registry = new Registry();

  constructor(counters: WorkerCounters) {
    const workers = counters.workers;
    const registers = [this.#registry];
    const perWorker = (name: string, help: string, counter: Counter, kind: 'counter' | 'gauge'): void => {
      const collect = function (this: PromCounter | Gauge): void {
        this.reset();
        for (let worker = 0; worker < workers; worker++) {
          const value = counters.get(worker, counter);
          if (this instanceof Gauge) this.set({ worker: String(worker) }, value);
          else (this as PromCounter).inc({ worker: String(worker) }, value);
        }
      };
      if (kind === 'gauge') new Gauge({ name, help, labelNames: ['worker'], registers, collect });
      else new PromCounter({ name, help, labelNames: ['worker'], registers, collect });
    };
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
