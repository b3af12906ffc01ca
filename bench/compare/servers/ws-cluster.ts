/**
 * ws on Node's cluster module: `node ws-cluster.ts --port N [--workers 2] [--deflate]`. The
 * primary forks the workers and hands out connections (round-robin on Linux); each worker is
 * a plain single-process ws server. Echo and connect workloads only: a broadcast would need
 * IPC between the workers, which is what shardws's pub/sub provides.
 */
import cluster from 'node:cluster';
import { exitOnSignals, serverArgs, startWsServer } from './ws-app.ts';

const { port, deflate } = serverArgs(process.argv);
const at = process.argv.indexOf('--workers');
const workers = at >= 0 ? Number(process.argv[at + 1]) : 2;

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      setTimeout(() => process.exit(0), 2000).unref();
      cluster.on('exit', () => {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      });
    });
  }
} else {
  exitOnSignals();
  startWsServer(port, deflate);
}
