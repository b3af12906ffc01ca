/**
 * The Bun comparison server: `bun bun-server.ts --port N [--deflate]`, /echo and /broadcast as
 * in ws-app.ts, on Bun's built-in (uWebSockets-based) server. `ws.publish` sends to every
 * subscriber but the sender. Type-checked by tsc with the few Bun declarations below.
 */
interface BunSocket {
  readonly data: { readonly path: string };
  send(message: string | Uint8Array, compress?: boolean): number;
  subscribe(topic: string): void;
  publish(topic: string, message: string | Uint8Array, compress?: boolean): number;
}
interface BunServer {
  upgrade(request: Request, options: { data: { path: string } }): boolean;
}
declare const Bun: {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      perMessageDeflate: boolean;
      idleTimeout: number;
      open(ws: BunSocket): void;
      message(ws: BunSocket, message: string | Uint8Array): void;
    };
  }): unknown;
};

const at = process.argv.indexOf('--port');
const port = at >= 0 ? Number(process.argv[at + 1]) : 8080;
// Bun compresses a send only when asked to (its `compress` argument defaults to false).
const deflate = process.argv.includes('--deflate');

Bun.serve({
  port,
  hostname: '127.0.0.1',
  fetch(request, server) {
    const path = new URL(request.url).pathname;
    if ((path === '/echo' || path === '/broadcast') && server.upgrade(request, { data: { path } })) return undefined;
    return new Response('Not Found', { status: 404 });
  },
  websocket: {
    perMessageDeflate: deflate,
    idleTimeout: 120,
    open(ws) {
      if (ws.data.path === '/broadcast') ws.subscribe('broadcast');
    },
    message(ws, message) {
      if (ws.data.path === '/echo') ws.send(message, deflate);
      else ws.publish('broadcast', message, deflate);
    },
  },
});
