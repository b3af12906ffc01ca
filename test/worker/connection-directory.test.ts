import { describe, expect, it } from 'vitest';
import type { MessageData, SendOptions, SendStatus } from '../../src/shared/app.ts';
import { PresenceTable } from '../../src/shared/presence-table.ts';
import type { DirectMessage } from '../../src/shared/thread-messages.ts';
import { ConnectionDirectory, parseConnectionId } from '../../src/worker/connection-directory.ts';
import type { Addressable, ClusterLink, DirectPeers } from '../../src/worker/connection-directory.ts';
import { WorkerPresence } from '../../src/worker/worker-presence.ts';
import { silentLogger } from '../support/worker-fakes.ts';

class FakeConnection implements Addressable {
  readonly sent: string[] = [];
  readonly closes: [number | undefined, string | undefined][] = [];
  readonly tags: string[] = [];
  readonly topics: string[] = [];
  readonly remoteAddress = '10.0.0.1';
  readonly bufferedAmount = 0;
  readonly id: string;
  constructor(id: string) {
    this.id = id;
  }
  send(data: MessageData, _options?: SendOptions): SendStatus {
    this.sent.push(Buffer.from(data as Uint8Array).toString());
    return 'written';
  }
  close(code?: number, reason?: string): void {
    this.closes.push([code, reason]);
  }
}

class FakePeers implements DirectPeers {
  readonly posts: [number, DirectMessage][] = [];
  readonly generations: Map<number, number>;
  constructor(generations: Map<number, number>) {
    this.generations = generations;
  }
  generationOf(worker: number): number {
    return this.generations.get(worker) ?? -1;
  }
  post(worker: number, message: DirectMessage): boolean {
    if (!this.generations.has(worker)) return false;
    this.posts.push([worker, message]);
    return true;
  }
  get workers(): Iterable<number> {
    return this.generations.keys();
  }
}

/** Worker 1 (generation 3) of server "srv", with peers 0 and 2. */
function setup(table = PresenceTable.create(32, 3)) {
  const peers = new FakePeers(new Map([[0, 1], [2, 5]]));
  const directory = new ConnectionDirectory<FakeConnection>('srv', 1, 3, peers, new WorkerPresence(table, 1, silentLogger()));
  const open = (): FakeConnection => {
    const c = new FakeConnection(directory.nextId());
    directory.add(c);
    return c;
  };
  return { peers, directory, open, table };
}

const text = (message: DirectMessage): string => (message.action.kind === 'send' ? Buffer.from(message.action.data).toString() : `close ${message.action.code}`);

describe('connection ids', () => {
  it('name server, worker and generation, and parse back', () => {
    const { open } = setup();
    const a = open();
    const b = open();
    expect(a.id).toBe('srv.1.3.1');
    expect(b.id).not.toBe(a.id);
    expect(parseConnectionId(b.id)).toEqual({ server: 'srv', worker: 1, generation: 3 });
    for (const bad of ['', 'srv', 'srv.1.3', '.1.3.4', 'srv.x!.3.4', 'srv.1.3.4.5', 'srv.1.3.A-']) expect(parseConnectionId(bad), bad).toBeNull();
  });
});

describe('ConnectionDirectory', () => {
  it('sends and closes by id: here at once, to the peer the id names, or says gone', () => {
    const { directory, peers, open } = setup();
    const a = open();
    expect(directory.send(a.id, 'hi')).toBe('written');
    expect(a.sent).toEqual(['hi']);
    expect(directory.send('srv.2.5.9', 'to peer 2')).toBe('forwarded');
    expect(peers.posts.map(([w, m]) => [w, m.target, text(m)])).toEqual([[2, { id: 'srv.2.5.9' }, 'to peer 2']]);
    // A replaced worker (another generation), an unknown one, this worker's own closed ids, another server without a bridge.
    for (const id of ['srv.2.4.9', 'srv.7.1.1', 'srv.1.3.99', 'other.0.1.1', 'garbage']) expect(directory.send(id, 'x'), id).toBe('gone');
    expect(directory.close(a.id, 4000, 'bye')).toBe('closing');
    expect(a.closes).toEqual([[4000, 'bye']]);
    expect(directory.close('srv.0.1.4')).toBe('forwarded');
    expect(peers.posts.at(-1)![1].action).toEqual({ kind: 'close', code: 1000, reason: '' });
  });

  it('forgets a removed connection, and its tags', () => {
    const { directory, open, table } = setup();
    const a = open();
    directory.tag(a, 'user');
    expect(table.count('tag', 'user')).toBe(1);
    directory.remove(a, ['user']);
    expect(directory.send(a.id, 'x')).toBe('gone');
    expect(directory.size).toBe(0);
    expect(table.count('tag', 'user')).toBe(0);
  });

  it('sends to a tag here and only to the peers that hold it, as the presence table says', () => {
    const table = PresenceTable.create(32, 3);
    const { directory, peers, open } = setup(table);
    const a = open();
    const b = open();
    directory.tag(a, 'u1');
    directory.tag(b, 'u2');
    new WorkerPresence(table, 2, silentLogger()).hold('tag', 'u1');
    directory.sendTo('u1', 'for u1');
    expect(a.sent).toEqual(['for u1']);
    expect(b.sent).toEqual([]);
    expect(peers.posts.map(([w, m]) => [w, m.target, text(m)])).toEqual([[2, { tag: 'u1' }, 'for u1']]);
    directory.sendTo('u2', 'for u2');
    expect(peers.posts).toHaveLength(1);
    directory.untag(b, 'u2');
    directory.sendTo('u2', 'no one');
    expect(b.sent).toEqual(['for u2']);
    directory.closeAll('u1', 4002, 'out');
    expect(a.closes).toEqual([[4002, 'out']]);
    expect(peers.posts.at(-1)).toEqual([2, { type: 'direct', target: { tag: 'u1' }, action: { kind: 'close', code: 4002, reason: 'out' } }]);
  });

  it('sends a tag to every peer once the presence table overflowed', () => {
    const table = PresenceTable.create(16, 3);
    const { directory, peers, open } = setup(table);
    const filler = new WorkerPresence(table, 0, silentLogger());
    for (let i = 0; i < 17; i++) filler.hold('tag', `f${i}`);
    directory.tag(open(), 'u');
    directory.sendTo('u', 'x');
    expect(peers.posts.map(([w]) => w).sort()).toEqual([0, 2]);
  });

  it('acts on what arrives for its own connections only, and lists them', () => {
    const { directory, open } = setup();
    const a = open();
    const b = open();
    directory.tag(b, 'k');
    directory.receive({ type: 'direct', target: { id: a.id }, action: { kind: 'send', data: Buffer.from('by id'), binary: false, compress: undefined, priority: 'normal' } });
    directory.receive({ type: 'direct', target: { tag: 'k' }, action: { kind: 'close', code: 4001, reason: 'r' } });
    directory.receive({ type: 'direct', target: { id: 'srv.1.3.zz' }, action: { kind: 'close', code: 4001, reason: 'r' } });
    expect(a.sent).toEqual(['by id']);
    expect(b.closes).toEqual([[4001, 'r']]);
    expect(directory.list().map((c) => c.id)).toEqual([a.id, b.id]);
    expect(directory.list()[0]).toMatchObject({ remoteAddress: '10.0.0.1', bufferedAmount: 0 });
    expect(directory.list()[0]!.openedAt).toBeGreaterThan(0);
  });

  it('hands ids of other servers and every tag to the cluster link', () => {
    const { directory, open } = setup();
    const calls: [string, DirectMessage][] = [];
    const held: [string, boolean][] = [];
    const cluster: ClusterLink = { direct: (server, m) => calls.push([server, m]), tagged: (m) => calls.push(['*', m]), tagHeld: (key, h) => held.push([key, h]) };
    directory.linkCluster(cluster);
    expect(directory.send('far.0.1.1', 'hello')).toBe('forwarded');
    const a = open();
    const b = open();
    directory.tag(a, 'u');
    directory.tag(b, 'u');
    directory.sendTo('u', 'all');
    expect(calls.map(([s, m]) => [s, m.target, text(m)])).toEqual([['far', { id: 'far.0.1.1' }, 'hello'], ['*', { tag: 'u' }, 'all']]);
    // The first and the last of this worker's connections with a tag, only.
    directory.untag(a, 'u');
    expect(held).toEqual([['u', true]]);
    directory.remove(b, ['u']);
    expect(held).toEqual([['u', true], ['u', false]]);
  });
});
