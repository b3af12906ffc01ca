/**
 * Drives Autobahn's fuzzingserver with the shardws client:
 *   node autobahn/client-runner.ts [ws://127.0.0.1:9001] [agent]
 * asks for the number of cases, runs each (`/runCase?case=N&agent=A`, echoing every message as
 * it came, text or binary), then asks the server to write its reports (`/updateReports`).
 */
import type { ClientOptions, CloseEvent, MessageData } from '../src/client/websocket.ts';
import { WebSocket } from '../src/client/websocket.ts';

const [base = 'ws://127.0.0.1:9001', agent = 'shardws'] = process.argv.slice(2);

/**
 * Autobahn's default offer: client_no_context_takeover and client_max_window_bits, so every
 * answer of the 13.x cases applies (a client that leaves out client_no_context_takeover gets
 * UNIMPLEMENTED where the server wants to request it).
 */
const OPTIONS: ClientOptions = {
  perMessageDeflate: { clientNoContextTakeover: true, clientMaxWindowBits: true },
  handshakeTimeout: 30,
};

/** Opens `path`, calls `onMessage` for each message, resolves with the close event. */
function session(path: string, onMessage: (ws: WebSocket, data: MessageData) => void): Promise<CloseEvent> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base}${path}`, [], OPTIONS);
    ws.onmessage = (event) => onMessage(ws, event.data);
    ws.onerror = () => {};
    ws.onclose = resolve;
  });
}

let count = 0;
await session('/getCaseCount', (_ws, data) => {
  count = Number(data.toString());
});
if (!(count > 0)) {
  console.error(`the fuzzing server at ${base} reported no cases`);
  process.exit(1);
}

const started = Date.now();
for (let i = 1; i <= count; i++) {
  await session(`/runCase?case=${i}&agent=${encodeURIComponent(agent)}`, (ws, data) => ws.send(data as string | Buffer));
  if (i % 50 === 0 || i === count) console.log(`ran ${i}/${count} cases (${Math.round((Date.now() - started) / 1000)} s)`);
}

await session(`/updateReports?agent=${encodeURIComponent(agent)}`, () => {});
console.log('reports updated');
