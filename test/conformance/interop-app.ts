/**
 * App for the client interop tests on our server: echoes, picks `chat` from the offered
 * subprotocols, refuses `/private` with 401, and on the text `close:<code>:<reason>` closes
 * with that code and reason.
 */
import { defineApp } from '../../src/shared/app.ts';

export default defineApp({
  upgrade(req) {
    if (new URL(req.url, 'http://localhost').pathname === '/private') {
      return { reject: 401, message: 'token required', headers: { 'www-authenticate': 'Bearer' } };
    }
    return { data: null, protocol: req.protocols.includes('chat') ? 'chat' : undefined };
  },

  message(ws, data, isBinary) {
    const text = isBinary ? '' : data.toString();
    if (text.startsWith('close:')) {
      const [, code, reason] = text.split(':');
      ws.close(Number(code), reason);
      return;
    }
    ws.send(data, { binary: isBinary });
  },
});
