/** The examples/ apps, each run on a 2-worker server and used by real ws clients. */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { issueToken } from '../examples/auth/app.ts';
import { cleanup, openClient, startServer, waitFor } from './e2e/helpers.ts';

const example = (name: string): string => fileURLToPath(new URL(`../examples/${name}/app.ts`, import.meta.url));

function open(url: string, options?: WebSocket.ClientOptions): Promise<{ ws: WebSocket; messages: unknown[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const messages: unknown[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(String(data))));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

afterEach(cleanup);

describe('examples/chat-room', () => {
  it('relays a message to the room on every worker, not to other rooms', async () => {
    const server = await startServer({ app: example('chat-room') });
    const base = `ws://127.0.0.1:${server.address().port}/`;
    const members = await Promise.all(['ann', 'bob', 'cy', 'dee'].map((name) => open(`${base}?room=a&name=${name}`)));
    const outsider = await open(`${base}?room=b&name=eve`);
    await waitFor(() => server.stats().workers.every((w) => w.connections > 0), 'connections on both workers');
    members[0]!.ws.send('hello room');
    for (const member of members) {
      await waitFor(() => member.messages.some((m) => (m as { type: string }).type === 'say'), 'the message in room a');
      expect(member.messages).toContainEqual({ type: 'say', name: 'ann', text: 'hello room' });
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(outsider.messages.some((m) => (m as { type: string }).type === 'say')).toBe(false);
    for (const { ws } of [...members, outsider]) ws.close();
  });

  it('refuses a bad room name with 400', async () => {
    const server = await startServer({ app: example('chat-room') });
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/?room=no%20spaces`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => {});
    });
    expect(status).toBe(400);
  });
});

describe('examples/dashboard-feed', () => {
  it('delivers the same ordered ticks to every subscriber on every worker, compressed in shared mode', async () => {
    const server = await startServer({ app: example('dashboard-feed'), deflate: { mode: 'shared', threshold: 16 } });
    const url = `ws://127.0.0.1:${server.address().port}/feed`;
    const subscribers = await Promise.all(Array.from({ length: 40 }, () => open(url, { perMessageDeflate: true })));
    await waitFor(() => subscribers.every((s) => s.messages.length >= 5), '5 ticks on every subscriber');
    for (const { ws, messages } of subscribers) {
      expect(ws.extensions).toContain('permessage-deflate');
      const seqs = (messages as { seq: number }[]).map((m) => m.seq);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
    }
    expect(server.stats().workers.every((w) => w.connections > 0)).toBe(true);
  });
});

describe('examples/auth', () => {
  it('refuses an upgrade without a valid token with 401 and accepts a signed one', async () => {
    const server = await startServer({ app: example('auth') });
    const url = `ws://127.0.0.1:${server.address().port}/`;
    for (const headers of [{}, { authorization: 'Bearer ann.forged' }]) {
      const res = await new Promise<{ status: number; auth: string | undefined }>((resolve) => {
        const ws = new WebSocket(url, { headers });
        ws.on('unexpected-response', (_req, r) => resolve({ status: r.statusCode ?? 0, auth: r.headers['www-authenticate'] }));
        ws.on('error', () => {});
      });
      expect(res).toEqual({ status: 401, auth: 'Bearer' });
    }
    const { ws, messages } = await open(url, { headers: { authorization: `Bearer ${issueToken('ann')}` } });
    await waitFor(() => messages.length > 0, 'the hello');
    expect(messages[0]).toEqual({ type: 'hello', user: 'ann' });
    const viaQuery = await open(`${url}?token=${encodeURIComponent(issueToken('bob'))}`);
    await waitFor(() => viaQuery.messages.length > 0, 'the hello');
    expect(viaQuery.messages[0]).toEqual({ type: 'hello', user: 'bob' });
    ws.close();
    viaQuery.ws.close();
  });
});

describe('examples/http-handler', () => {
  it('serves a (req, res) handler from every worker beside the WebSockets', async () => {
    const server = await startServer({ app: example('http-handler') });
    const base = `http://127.0.0.1:${server.address().port}`;
    const workers = new Set<string>();
    // A fresh connection each time: the primary balances connections, not requests.
    for (let i = 0; i < 20 && workers.size < 2; i++) {
      const res = await fetch(`${base}/api/time`, { headers: { connection: 'close' } });
      expect(res.status).toBe(200);
      expect(typeof ((await res.json()) as { now: string }).now).toBe('string');
      workers.add(res.headers.get('x-shardws-worker')!);
    }
    expect(workers).toEqual(new Set(['0', '1']));
    const page = await fetch(`${base}/`);
    expect(await page.text()).toContain('(req, res) handler');
    const echoed = await fetch(`${base}/api/echo`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expect(await echoed.json()).toEqual({ a: 1 });
    expect((await fetch(`${base}/missing`)).status).toBe(404);
    const client = await openClient(`ws://127.0.0.1:${server.address().port}/ws`);
    expect(JSON.parse(await client.nextText())).toHaveProperty('worker');
    expect((await client.request('beside http')).data.toString()).toBe('beside http');
  });
});
