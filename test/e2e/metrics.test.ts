/** The Prometheus and health endpoints, read from the counters every worker shares. */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, clientFrame, fixtureApp, openShardClients, rawWebSocket, startServer, waitFor, wsUrl } from './helpers.ts';

afterEach(cleanup);

const get = async (port: number, path: string): Promise<{ status: number; type: string; body: string }> => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
};

/** The sum of a metric's samples whose labels include every one of `labels` (comma separated). */
const sum = (text: string, metric: string, labels = ''): number =>
  text
    .split('\n')
    .filter((line) => line.startsWith(metric + '{') || line.startsWith(metric + ' '))
    .filter((line) => labels === '' || labels.split(',').every((l) => line.includes(l)))
    .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);

describe('metrics and health', () => {
  it('serves per-worker counters in the Prometheus text format', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo'), metricsPath: '/metrics', healthPath: '/health', deflate: 'shared' });
    const port = server.address().port;
    const clients = await openShardClients(wsUrl(server), 4, { perMessageDeflate: true });
    const text = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: 'repetitive' })) });
    for (const { client } of clients) expect((await client.request(text)).data.toString()).toBe(text);
    clients[0]!.client.ws.close(1000);
    await clients[0]!.client.waitClosed();
    const raw = await rawWebSocket(port);
    raw.socket.write(clientFrame(0x1, Buffer.from('unmasked'), { mask: false }));
    await waitFor(() => raw.closed, 'the protocol error to close the socket');

    // Closes are counted as the sockets close: poll until both are in.
    let metrics = { status: 0, type: '', body: '' };
    for (let i = 0; i < 50; i++) {
      metrics = await get(port, '/metrics');
      if (sum(metrics.body, 'shardws_closes_total', 'code="1002"') >= 1 && sum(metrics.body, 'shardws_closes_total', 'code="1000"') >= 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(metrics.status).toBe(200);
    expect(metrics.type).toContain('text/plain');
    expect(metrics.body).toContain('# TYPE shardws_connections gauge');
    expect(metrics.body).toMatch(/shardws_connections\{worker="0"\} \d+/);
    expect(metrics.body).toMatch(/shardws_connections\{worker="1"\} \d+/);
    expect(sum(metrics.body, 'shardws_connections')).toBe(3);
    expect(sum(metrics.body, 'shardws_messages_received_total')).toBeGreaterThanOrEqual(4);
    expect(sum(metrics.body, 'shardws_messages_sent_total')).toBeGreaterThanOrEqual(8); // greetings + echoes
    expect(sum(metrics.body, 'shardws_closes_total', 'code="1000"')).toBe(1);
    expect(sum(metrics.body, 'shardws_closes_total', 'code="1002"')).toBe(1);
    expect(sum(metrics.body, 'shardws_protocol_errors_total')).toBe(1);
    expect(sum(metrics.body, 'shardws_compression_ratio')).toBeGreaterThan(2);
    expect(sum(metrics.body, 'shardws_worker_restarts_total')).toBe(0);
    expect(sum(metrics.body, 'shardws_workers')).toBe(2);
  });

  it('reports health, and counts a worker restart', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo'), metricsPath: '/metrics', healthPath: '/health' });
    const port = server.address().port;
    const health = await get(port, '/health');
    expect(health.status).toBe(200);
    const body = JSON.parse(health.body) as { status: string; workers: { alive: boolean }[] };
    expect(body.status).toBe('ok');
    expect(body.workers).toHaveLength(2);
    expect(body.workers.every((w) => w.alive)).toBe(true);

    const [victim] = await openShardClients(wsUrl(server), 1);
    victim!.client.ws.send('exit');
    await waitFor(() => server.stats().restarts === 1, 'the worker to be replaced', 10_000);
    const metrics = await get(port, '/metrics');
    expect(sum(metrics.body, 'shardws_worker_restarts_total')).toBe(1);
  });

  it('is off unless asked for', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo') });
    expect((await get(server.address().port, '/metrics')).status).toBe(426);
  });
});

describe('admin listener', () => {
  it('serves metrics, stats and health on its own port, on localhost, and nothing of it on the clients\' port', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo'), adminPort: 0 });
    const admin = server.adminAddress()!;
    expect(admin.address).toBe('127.0.0.1');
    expect(admin.port).not.toBe(server.address().port);
    const clients = await openShardClients(wsUrl(server), 2);
    for (const { client } of clients) await client.request('x'.repeat(300));

    const metrics = await get(admin.port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toContain('text/plain');
    expect(sum(metrics.body, 'shardws_connections')).toBe(2);
    // Both upgrades are in the handshake histogram; the 300-byte messages in the sizes (in: <= 1024).
    expect(sum(metrics.body, 'shardws_handshake_duration_seconds_count')).toBe(2);
    expect(sum(metrics.body, 'shardws_message_size_bytes_bucket', 'direction="in",le="1024"')).toBeGreaterThanOrEqual(2);
    expect(sum(metrics.body, 'shardws_message_size_bytes_bucket', 'direction="in",le="256"')).toBe(0);
    // A row per worker and one for the primary in the per-thread runtime figures.
    for (const worker of ['0', '1', 'primary']) expect(metrics.body).toMatch(new RegExp(`shardws_heap_used_bytes\\{worker="${worker}"\\} [1-9]`));
    expect(metrics.body).toContain('process_cpu_seconds_total');

    const stats = await get(admin.port, '/stats');
    expect(stats.status).toBe(200);
    expect((JSON.parse(stats.body) as { workers: unknown[] }).workers).toHaveLength(2);
    const health = await get(admin.port, '/health');
    expect(health.status).toBe(200);
    expect((JSON.parse(health.body) as { status: string }).status).toBe('ok');
    const other = await get(admin.port, '/');
    expect(other.status).toBe(404);
    expect(other.body).toContain('/metrics, /stats, /health');

    // The clients' port answers none of it (the app has no http handler: 426).
    for (const path of ['/metrics', '/stats', '/health']) expect((await get(server.address().port, path)).status).toBe(426);
  });

  it('keeps answering /health from the primary while a worker is replaced', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo'), adminPort: 0 });
    const admin = server.adminAddress()!.port;
    const [victim] = await openShardClients(wsUrl(server), 1);
    victim!.client.ws.send('exit');
    await waitFor(() => server.stats().restarts === 1, 'the worker to be replaced', 10_000);
    expect([200, 503]).toContain((await get(admin, '/health')).status);
    let status = 0;
    for (let i = 0; i < 200 && status !== 200; i++) {
      status = (await get(admin, '/health')).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe(200);
    expect(sum((await get(admin, '/metrics')).body, 'shardws_worker_restarts_total')).toBe(1);
  });

  it('is off by default', async () => {
    const server = await startServer({ app: fixtureApp('shard-echo') });
    expect(server.adminAddress()).toBeNull();
  });
});
