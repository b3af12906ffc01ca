/** The workloads of bench:compare (W1-W6), also run by bench:proxy. */

export type Metric = 'messagesPerSecond' | 'handshakesPerSecond' | 'p50';

export interface Workload {
  readonly id: string;
  readonly title: string;
  readonly path: '/echo' | '/broadcast';
  readonly deflate: boolean;
  readonly args: readonly string[];
  /** The headline figure, and whether more is better. */
  readonly metric: Metric;
  readonly unit: string;
  /** Raw TCP echo only makes sense for plain echo. */
  readonly rawEcho: boolean;
  readonly broadcast: boolean;
}

export const WORKLOADS: readonly Workload[] = [
  { id: 'W1', title: 'echo 64 B text, 100 conns × 8 in flight', path: '/echo', deflate: false, args: ['--mode', 'echo', '-c', '100', '-p', '8', '-s', '64', '--kind', 'text'], metric: 'messagesPerSecond', unit: 'msg/s', rawEcho: true, broadcast: false },
  { id: 'W2', title: 'echo 16 KiB binary, 50 conns × 4 in flight', path: '/echo', deflate: false, args: ['--mode', 'echo', '-c', '50', '-p', '4', '-s', '16384', '--kind', 'binary'], metric: 'messagesPerSecond', unit: 'msg/s', rawEcho: true, broadcast: false },
  { id: 'W3', title: 'echo 4 KiB JSON, permessage-deflate, 50 conns × 4 in flight', path: '/echo', deflate: true, args: ['--mode', 'echo', '-c', '50', '-p', '4', '-s', '4096', '--kind', 'json', '--deflate'], metric: 'messagesPerSecond', unit: 'msg/s', rawEcho: false, broadcast: false },
  { id: 'W4', title: 'broadcast 256 B to 1,000 subscribers, 4 in flight', path: '/broadcast', deflate: false, args: ['--mode', 'broadcast', '-c', '1000', '-p', '4', '-s', '256', '--kind', 'text'], metric: 'messagesPerSecond', unit: 'deliveries/s', rawEcho: false, broadcast: true },
  { id: 'W5', title: '10,000 connections: handshakes/s, RSS per connection', path: '/echo', deflate: false, args: ['--mode', 'connect', '-c', '10000', '--concurrency', '200'], metric: 'handshakesPerSecond', unit: 'handshakes/s', rawEcho: false, broadcast: false },
  { id: 'W6', title: 'latency: echo 64 B text, 10 conns × 1 in flight', path: '/echo', deflate: false, args: ['--mode', 'echo', '-c', '10', '-p', '1', '-s', '64', '--kind', 'text'], metric: 'p50', unit: 'ms p50', rawEcho: true, broadcast: false },
];
