/**
 * A chat room server: `ws://host:port/?room=NAME&name=NICK`. Every message is relayed to the
 * room on every worker; joins and leaves are announced.
 *
 *   npm run example:chat        (then open two clients, e.g. `npx wscat -c 'ws://localhost:9001/?room=a&name=ann'`)
 *
 * In your own project: `import { defineApp } from 'shardws'`.
 */
import { defineApp } from '../../src/index.ts';

interface Member {
  readonly room: string;
  readonly name: string;
}

const NAME = /^[\w-]{1,32}$/;

export default defineApp<Member>({
  upgrade(req) {
    const params = new URL(req.url, 'http://localhost').searchParams;
    const room = params.get('room') ?? 'lobby';
    const name = params.get('name') ?? `guest-${Math.floor(Math.random() * 10_000)}`;
    if (!NAME.test(room) || !NAME.test(name)) return { reject: 400, message: 'room and name: 1-32 letters, digits, _ or -' };
    return { data: { room, name } };
  },

  open(ws) {
    const topic = `room:${ws.data.room}`;
    ws.subscribe(topic);
    ws.publish(topic, JSON.stringify({ type: 'join', name: ws.data.name }));
    ws.send(JSON.stringify({ type: 'welcome', room: ws.data.room, name: ws.data.name, worker: ws.shard.id }));
  },

  message(ws, data, isBinary) {
    if (isBinary) return ws.close(1003, 'text only');
    const text = data.toString().slice(0, 2000);
    const line = JSON.stringify({ type: 'say', name: ws.data.name, text });
    ws.publish(`room:${ws.data.room}`, line);
    ws.send(line);
  },

  close(ws) {
    ws.shard.publish(`room:${ws.data.room}`, JSON.stringify({ type: 'leave', name: ws.data.name }));
  },
});
