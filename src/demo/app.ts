import type { ServerWebSocket, Shard } from '../shared/app.ts';
import { defineApp } from '../shared/app.ts';
import { isStreamId } from '../shared/stream-id.ts';
import { FAVICON_ICO } from './favicon.ts';
import { CHAT_PAGE } from './page.ts';

type Route = 'echo' | 'broadcast' | 'chat';
interface DemoData {
  readonly route: Route;
  /** `/chat?since=ID`: the id of the last chat message the page has (streams mode). */
  readonly since: string | undefined;
}

const ROUTES: Readonly<Record<string, Route>> = { '/echo': 'echo', '/broadcast': 'broadcast', '/chat': 'chat' };
const MAX_NAME = 32;
const MAX_TEXT = 2000;

let statsTimer: NodeJS.Timeout | null = null;

/**
 * The chat's subscribers on every worker (shared memory) and, with `--redis`, every server, on
 * the status topic (not the chat's, whose messages a streams bridge keeps).
 */
function publishMembers(shard: Shard): void {
  void shard.subscriberCount('chat', { scope: 'cluster' }).then((members) => shard.publish('workers', JSON.stringify({ type: 'members', members })));
}

function workerCounts(shard: Shard): string {
  return JSON.stringify({ type: 'workers', workers: shard.stats().map((w) => ({ worker: w.worker, connections: w.connections })) });
}

/**
 * The built-in demo: `/` is a chat page, `/chat` its socket (messages go to every chatter on
 * every worker), `/echo` echoes each message with its type, `/broadcast` relays each message
 * to every other `/broadcast` client across workers.
 *
 * With `--redis URL --redis-streams` the chat recovers: each chat message carries its id (the
 * `stamp` below), the page keeps the last one, and comes back (a reload, a reconnect) with
 * `/chat?since=ID`: it gets what it missed, in order, then live messages, none twice.
 */
export default defineApp<DemoData>({
  start(shard) {
    // One worker publishes the per-worker connection counts for every chat page.
    if (shard.id === 0) {
      statsTimer = setInterval(() => {
        shard.publish('workers', workerCounts(shard));
        // Again each second: counts published from two workers at once may arrive in either order.
        publishMembers(shard);
      }, 1000);
      statsTimer.unref();
    }
  },

  stop() {
    if (statsTimer !== null) clearInterval(statsTimer);
  },

  upgrade(req) {
    const url = new URL(req.url, 'http://localhost');
    const route = ROUTES[url.pathname];
    if (route === undefined) return { reject: 404, message: 'no WebSocket endpoint here (try /echo, /broadcast, /chat)' };
    const since = url.searchParams.get('since');
    // A malformed id from the page is ignored rather than trusted: ws.subscribe refuses it.
    return { data: { route, since: since !== null && isStreamId(since) ? since : undefined } };
  },

  // The room's member count on every page, as people join and leave.
  subscription(ws, topic) {
    if (topic === 'chat') publishMembers(ws.shard);
  },

  open(ws) {
    if (ws.data.route === 'broadcast') ws.subscribe('broadcast');
    if (ws.data.route === 'chat') {
      ws.subscribe('chat', ws.data.since === undefined ? undefined : { since: ws.data.since });
      ws.subscribe('workers');
      ws.send(JSON.stringify({ type: 'welcome', worker: ws.shard.id, workers: ws.shard.count }));
      ws.send(workerCounts(ws.shard));
    }
  },

  message(ws, data, isBinary) {
    switch (ws.data.route) {
      case 'echo':
        ws.send(data, { binary: isBinary });
        return;
      case 'broadcast':
        ws.publish('broadcast', data, { binary: isBinary });
        return;
      case 'chat':
        relayChat(ws, data, isBinary);
        return;
    }
  },

  // Streams mode: every chat message gets its id as its first field, for the page to keep.
  stamp(topic, id, data) {
    if (topic !== 'chat' || data[0] !== 0x7b) return data;
    return `{"id":"${id}",${data.toString('utf8', 1)}`;
  },

  // Told before the missed messages are sent: the page says how many, or that some are gone.
  recovery(ws, { replayed, complete }) {
    ws.send(JSON.stringify({ type: 'recovery', replayed, complete }));
  },

  http(req, res) {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(CHAT_PAGE);
      return;
    }
    if (req.method === 'GET' && path === '/favicon.ico') {
      res.writeHead(200, { 'content-type': 'image/x-icon', 'cache-control': 'max-age=86400' }).end(FAVICON_ICO);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
  },
});

function relayChat(ws: ServerWebSocket<DemoData>, data: Buffer, isBinary: boolean): void {
  if (isBinary) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString());
  } catch {
    return;
  }
  const { name, text } = (parsed ?? {}) as { name?: unknown; text?: unknown };
  if (typeof text !== 'string' || text.length === 0) return;
  const message = JSON.stringify({
    type: 'chat',
    name: typeof name === 'string' && name !== '' ? name.slice(0, MAX_NAME) : 'anonymous',
    text: text.slice(0, MAX_TEXT),
    worker: ws.shard.id,
    at: Date.now(),
  });
  // To every chatter, this one included: with a streams bridge its own copy comes back with its id too.
  ws.shard.publish('chat', message);
}
