/**
 * A well-behaved client that must keep getting its echoes within a deadline: the hang detector
 * of scripts/fuzz.ts. It runs on a thread of its own, so a busy load generator cannot make it
 * late; a missed deadline is the server's.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

export interface ProbeStats {
  readonly echoes: number;
  readonly hangs: number;
  readonly reconnects: number;
  readonly maxLatency: number;
}

interface ProbeConfig {
  readonly url: string;
  readonly deadline: number;
}

/** Starts the probe thread; `stop` ends it and resolves with its final counts. */
export function startProbe(url: string, deadline: number): { latest(): ProbeStats; stop(): Promise<ProbeStats> } {
  const worker = new Worker(new URL(import.meta.url), { workerData: { url, deadline } satisfies ProbeConfig });
  let latest: ProbeStats = { echoes: 0, hangs: 0, reconnects: 0, maxLatency: 0 };
  worker.on('message', (stats: ProbeStats) => (latest = stats));
  return {
    latest: () => latest,
    stop: async () => {
      const last = new Promise<void>((resolve) => worker.once('message', () => resolve()));
      worker.postMessage('stop');
      await last;
      await worker.terminate();
      return latest;
    },
  };
}

function run({ url, deadline }: ProbeConfig): void {
  const stats = { echoes: 0, hangs: 0, reconnects: 0, maxLatency: 0 };
  let ws: WebSocket | null = null;
  let pending: { text: string; at: number } | null = null;
  let counter = 0;
  let stopped = false;

  const open = (): void => {
    const socket = new WebSocket(url, { perMessageDeflate: true });
    ws = socket;
    pending = { text: '(open)', at: Date.now() };
    socket.on('open', () => {
      if (pending?.text === '(open)') pending = null;
    });
    socket.on('message', (data) => {
      if (pending !== null && String(data) === pending.text) {
        stats.maxLatency = Math.max(stats.maxLatency, Date.now() - pending.at);
        pending = null;
        stats.echoes++;
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (stopped || ws !== socket) return;
      stats.reconnects++;
      open();
    });
  };

  const check = (): void => {
    const now = Date.now();
    if (pending !== null) {
      if (now - pending.at > deadline) {
        stats.hangs++;
        console.log(`probe: HANG: waited ${now - pending.at} ms for ${pending.text}`);
        const late = ws;
        ws = null;
        late?.terminate();
        open();
      }
      return;
    }
    if (ws?.readyState === WebSocket.OPEN) {
      pending = { text: `probe ${++counter}`, at: now };
      ws.send(pending.text);
    }
  };

  open();
  const timer = setInterval(check, 100);
  const report = setInterval(() => parentPort!.postMessage({ ...stats }), 500);
  parentPort!.on('message', () => {
    stopped = true;
    clearInterval(timer);
    clearInterval(report);
    ws?.terminate();
    parentPort!.postMessage({ ...stats });
  });
}

if (!isMainThread) run(workerData as ProbeConfig);
