/** Records what a shardws client WebSocket dispatches, in order, for tests to compare and wait on. */
import type { CloseEvent, ErrorEvent, MessageData, WebSocket } from '../../src/client/websocket.ts';

export interface ClientTrace {
  /** One line per event: `open`, `open reconnected 2`, `error`, `close 1006 false`, `close 1001 false reconnect`, `reconnect 1`, `redirect URL 302`, `ping`, `pong`, `message`. */
  readonly events: string[];
  readonly messages: MessageData[];
  readonly errors: Error[];
  readonly closes: CloseEvent[];
  /** Resolves at the first `close` event from now on that does not announce a reconnection. */
  closed(): Promise<CloseEvent>;
  /** Resolves when `count` events of `type` have been seen in all (polling, bounded by `timeout` ms). */
  waitFor(type: string, count?: number, timeout?: number): Promise<void>;
  /** The next message not yet taken by `next` (waiting for it if it has not come). */
  next(timeout?: number): Promise<MessageData>;
}

export function traceClient(ws: WebSocket): ClientTrace {
  const events: string[] = [];
  const messages: MessageData[] = [];
  const errors: Error[] = [];
  const closes: CloseEvent[] = [];
  ws.addEventListener('open', (e) => events.push(e.reconnected ? `open reconnected ${e.attempt}` : 'open'));
  ws.addEventListener('message', (e) => {
    events.push('message');
    messages.push(e.data);
  });
  ws.addEventListener('error', (e: ErrorEvent) => {
    events.push('error');
    errors.push(e.error);
  });
  ws.addEventListener('close', (e) => {
    events.push(`close ${e.code} ${e.wasClean}${e.willReconnect ? ' reconnect' : ''}`);
    closes.push(e);
  });
  ws.addEventListener('reconnect', (e) => events.push(`reconnect ${e.attempt}`));
  ws.addEventListener('redirect', (e) => events.push(`redirect ${e.url} ${e.status}`));
  ws.addEventListener('ping', () => events.push('ping'));
  ws.addEventListener('pong', () => events.push('pong'));
  let cursor = 0;
  const count = (type: string): number => events.filter((line) => line === type || line.startsWith(`${type} `)).length;
  const waitFor = async (type: string, wanted = 1, timeout = 5000): Promise<void> => {
    const deadline = Date.now() + timeout;
    while (count(type) < wanted) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${wanted} × ${type}; saw ${events.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  return {
    events,
    messages,
    errors,
    closes,
    closed: () =>
      new Promise<CloseEvent>((resolve) => {
        const listener = (e: CloseEvent): void => {
          if (e.willReconnect) return;
          ws.removeEventListener('close', listener);
          resolve(e);
        };
        ws.addEventListener('close', listener);
      }),
    waitFor,
    async next(timeout = 5000) {
      const index = cursor++;
      await waitFor('message', index + 1, timeout);
      return messages[index]!;
    },
  };
}
