/**
 * Clients and servers for the durable-bridge proofs, around test/fixtures/apps/numbered-topic.ts:
 * a subscriber that keeps its last id and reconnects with it, a publisher of numbered messages,
 * and a shardws server in a child process (`shardws serve … --redis-streams`) that can be SIGKILLed.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { BridgeNotice, Recovery } from '../../src/shared/app.ts';
import { FIRST_ID, compareStreamIds } from '../../src/shared/stream-id.ts';
import { waitFor } from '../e2e/helpers.ts';

export const NUMBERED_APP = fileURLToPath(new URL('../fixtures/apps/numbered-topic.ts', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

/** One message as delivered: `<id> <text>`. */
export interface Delivered {
  readonly id: string;
  readonly text: string;
}

/**
 * A subscriber of one topic that remembers every message (with its id), every recovery outcome
 * and notice, and reconnects with the last id it has.
 */
export class StreamSubscriber {
  readonly delivered: Delivered[] = [];
  readonly recoveries: Recovery[] = [];
  readonly notices: BridgeNotice[] = [];
  readonly topic: string;
  ws: WebSocket | null = null;
  closed = false;

  constructor(topic = 'numbers') {
    this.topic = topic;
  }

  get lastId(): string {
    return this.delivered.at(-1)?.id ?? FIRST_ID;
  }

  /** Connects to `base` (ws://host:port) with `since` = the last id, and waits for the recovery outcome. */
  async connect(base: string): Promise<void> {
    const recovered = this.recoveries.length;
    const ws = new WebSocket(`${base}/sub?topic=${encodeURIComponent(this.topic)}&since=${this.lastId}`);
    this.ws = ws;
    this.closed = false;
    ws.on('message', (data) => this.#receive(data.toString()));
    ws.on('close', () => {
      if (this.ws === ws) this.closed = true;
    });
    ws.on('error', () => {});
    await waitFor(() => this.recoveries.length > recovered || this.closed, 'the recovery outcome', 15_000);
    if (this.recoveries.length === recovered) throw new Error('the subscriber was closed before it recovered');
  }

  texts(prefix = ''): string[] {
    return this.delivered.filter((d) => d.text.startsWith(prefix)).map((d) => d.text);
  }

  /** The numbers of messages `<prefix><n>`, in the order they came. */
  numbers(prefix = ''): number[] {
    return this.texts(prefix).map((text) => Number(text.slice(prefix.length).split(' ')[0]));
  }

  /** Ids only ever grow: each message once, in the stream's order. */
  idsIncrease(): boolean {
    return this.delivered.every((d, i) => i === 0 || compareStreamIds(this.delivered[i - 1]!.id, d.id) < 0);
  }

  close(): void {
    this.ws?.terminate();
  }

  #receive(text: string): void {
    if (text.startsWith('{')) {
      const message = JSON.parse(text) as { type: string; notice?: BridgeNotice } & Recovery;
      if (message.type === 'recovery') this.recoveries.push({ topic: message.topic, since: message.since, replayed: message.replayed, complete: message.complete });
      else if (message.notice !== undefined) this.notices.push(message.notice);
      return;
    }
    const space = text.indexOf(' ');
    this.delivered.push({ id: text.slice(0, space), text: text.slice(space + 1) });
  }
}

/** A publisher: each message it sends is published to its topic. */
export class StreamPublisher {
  readonly ws: WebSocket;
  readonly notices: BridgeNotice[] = [];
  readonly answers: string[] = [];
  sent = 0;

  constructor(base: string, topic = 'numbers', ids = false) {
    this.ws = new WebSocket(`${base}/pub?topic=${encodeURIComponent(topic)}${ids ? '&ids=1' : ''}`);
    this.ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('{')) this.notices.push((JSON.parse(text) as { notice: BridgeNotice }).notice);
      else this.answers.push(text);
    });
  }

  async opened(): Promise<this> {
    if (this.ws.readyState !== WebSocket.OPEN) await new Promise((resolve, reject) => this.ws.once('open', resolve).once('error', reject));
    return this;
  }

  /** Sends `<prefix><n>`, numbered from 1, padded to `size` bytes. */
  sendNext(prefix = '', size = 0): void {
    const text = `${prefix}${++this.sent}`;
    this.ws.send(size > text.length ? `${text} ${'.'.repeat(size - text.length - 1)}` : text);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** `shardws serve NUMBERED_APP --redis URL --redis-streams` with two workers, in a child process. */
export class ServerProcess {
  readonly child: ChildProcessWithoutNullStreams;
  port = 0;
  #rest = '';

  constructor(redisUrl: string, extra: readonly string[] = []) {
    const args = [CLI, 'serve', NUMBERED_APP, '--host', '127.0.0.1', '--port', '0', '--workers', '2', '--redis', redisUrl, '--redis-streams', '--log-level', 'info', ...extra];
    this.child = spawn(process.execPath, args, { stdio: 'pipe' });
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (this.#rest + chunk).split('\n');
      this.#rest = lines.pop()!;
      for (const line of lines) {
        // The primary's ready record (JSON lines: stdout is not a terminal).
        if (!line.startsWith('{') || !line.includes('"listening on ')) continue;
        this.port = Number((JSON.parse(line) as { port: number }).port);
      }
    });
    this.child.stderr.resume();
  }

  get base(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async listening(): Promise<this> {
    await waitFor(() => this.port > 0 || this.child.exitCode !== null, 'the server process to listen', 20_000);
    if (this.port === 0) throw new Error(`the server process exited with ${this.child.exitCode}`);
    return this;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}
