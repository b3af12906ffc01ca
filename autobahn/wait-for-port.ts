/** `node autobahn/wait-for-port.ts HOST PORT TIMEOUT_MS`: exits 0 once HOST:PORT accepts TCP, 1 on timeout. */
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const [host = '127.0.0.1', port = '9001', timeout = '10000'] = process.argv.slice(2);
const deadline = Date.now() + Number(timeout);

const accepts = (): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(Number(port), host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

while (!(await accepts())) {
  if (Date.now() > deadline) {
    console.error(`nothing listens on ${host}:${port} after ${timeout} ms`);
    process.exit(1);
  }
  await sleep(100);
}
