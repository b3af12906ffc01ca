/**
 * Entry point of a worker thread (a shard): builds the ShardRuntime from workerData and feeds it
 * the primary's messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PrimaryMessage, WorkerInit, WorkerMessage } from '../shared/thread-messages.ts';
import { ShardRuntime } from './shard-runtime.ts';

if (parentPort === null) throw new Error('src/worker/shard is a worker thread entry point');
const port = parentPort;
const runtime = new ShardRuntime(workerData as WorkerInit, (message: WorkerMessage) => port.postMessage(message));
// Sockets may arrive before the app has started; they wait in the port's queue until then.
await runtime.start();
port.on('message', (message: PrimaryMessage) => runtime.onMessage(message));
