/**
 * An authenticated app: the upgrade is refused with 401 unless the request carries a valid
 * token (`Authorization: Bearer TOKEN` or `?token=TOKEN`, for browsers that cannot set headers).
 * Tokens are `user.signature`, the signature an HMAC-SHA256 of the user with SHARDWS_SECRET.
 *
 *   SHARDWS_SECRET=change-me npm run example:auth
 *   node -e "console.log(require('node:crypto').createHmac('sha256','change-me').update('ann').digest('base64url'))"
 *
 * In your own project: `import { defineApp } from 'shardws'`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { defineApp } from '../../src/index.ts';

const SECRET = process.env.SHARDWS_SECRET ?? 'dev-secret';

/** Signs `user`: what a login endpoint would hand out. */
export function issueToken(user: string, secret = SECRET): string {
  return `${user}.${createHmac('sha256', secret).update(user).digest('base64url')}`;
}

function verify(token: string): string | null {
  const dot = token.lastIndexOf('.');
  if (dot <= 0) return null;
  const user = token.slice(0, dot);
  const expected = Buffer.from(issueToken(user).slice(dot + 1));
  const given = Buffer.from(token.slice(dot + 1));
  return given.length === expected.length && timingSafeEqual(given, expected) ? user : null;
}

export default defineApp<{ readonly user: string }>({
  upgrade(req) {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7) : new URL(req.url, 'http://localhost').searchParams.get('token');
    const user = token ? verify(token) : null;
    if (user === null) return { reject: 401, message: 'a valid token is required', headers: { 'WWW-Authenticate': 'Bearer' } };
    return { data: { user }, headers: { 'X-Authenticated-User': user } };
  },

  open(ws) {
    ws.send(JSON.stringify({ type: 'hello', user: ws.data.user }));
  },

  message(ws, data, isBinary) {
    ws.send(data, { binary: isBinary });
  },
});
