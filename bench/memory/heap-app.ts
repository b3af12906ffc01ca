/**
 * The app that bench/memory/held-connections.ts serves: an echo on every path, and a
 * `GET /__heap` that answers the worker's V8 heap spaces, after a full GC with `?gc=1` (the
 * harness starts Node with --expose-gc, a process-wide flag every worker's context sees).
 */
import { getHeapSpaceStatistics } from 'node:v8';
import { defineApp } from '../../src/index.ts';
import { heapSpaces } from './heap-spaces.ts';

export default defineApp({
  message(ws, data, isBinary) {
    ws.send(data, { binary: isBinary });
  },
  http(req, res) {
    if (req.url?.startsWith('/__heap') !== true) {
      res.statusCode = 404;
      res.end();
      return;
    }
    if (req.url.includes('gc=1')) (globalThis as { gc?: () => void }).gc?.();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(heapSpaces(getHeapSpaceStatistics())));
  },
});
