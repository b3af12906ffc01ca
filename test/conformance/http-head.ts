/** Reading an HTTP/1.1 head off a raw socket, for the fuzzers' own handshakes. */
import type { Socket } from 'node:net';

export interface HttpHead {
  /** The request line or status line. */
  readonly startLine: string;
  /** Lowercase names; repeated headers joined with ", " as Node does. */
  readonly headers: Record<string, string>;
  /** Bytes after the head (early frames). */
  readonly rest: Buffer;
}

/** Resolves with the first head on `socket`; rejects on close or after `timeout` ms. */
export function readHead(socket: Socket, timeout = 5000): Promise<HttpHead> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (error: Error | null, head?: HttpHead): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (error) reject(error);
      else resolve(head!);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > 64 * 1024) done(new Error('HTTP head over 64 KiB'));
        return;
      }
      socket.pause();
      const [startLine, ...lines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      done(null, { startLine: startLine!, headers, rest: buffered.subarray(end + 4) });
    };
    const onClose = (): void => done(new Error(`connection closed before an HTTP head: ${JSON.stringify(buffered.toString('latin1').slice(0, 200))}`));
    const timer = setTimeout(() => done(new Error(`no HTTP head within ${timeout} ms`)), timeout);
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}
