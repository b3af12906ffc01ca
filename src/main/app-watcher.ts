/**
 * `shardws serve --watch`: reloads the app (server.reload(), connections kept) when a file in the
 * directory of one of its modules changes. Editors write a file in several steps (truncate,
 * write, rename), so changes are gathered for a short quiet period before one reload.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { appUrl } from '../worker/app-loader.ts';

/** Quiet time after the last change before the reload, ms. */
const SETTLE_MS = 150;

/** The directories of the app modules a config names (file modules only). */
export function appDirectories(apps: readonly (string | null)[]): string[] {
  const dirs = new Set<string>();
  for (const spec of apps) {
    const url = appUrl(spec);
    if (url.startsWith('file:')) dirs.add(dirname(fileURLToPath(url)));
  }
  return [...dirs];
}

/** Whether a changed path (relative to a watched directory) can matter to the app: not a dependency, not a dotfile. */
const relevant = (file: string | null): boolean => file === null || !/(^|[\\/])(node_modules|\.[^\\/]*)([\\/]|$)/.test(file);

/** Watches `dirs` (recursively) and calls `reload` once per burst of changes; returns a stop function. */
export function watchApp(dirs: readonly string[], reload: () => Promise<void>, logger: Logger): () => void {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  const run = (): void => {
    timer = null;
    if (running !== null) {
      again = true;
      return;
    }
    running = reload()
      .catch(() => {
        // reload() has logged why; the server keeps the app it had.
      })
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          run();
        }
      });
  };
  const watchers: FSWatcher[] = dirs.map((dir) => {
    const watcher = watch(dir, { recursive: true }, (_event, file) => {
      if (!relevant(file)) return;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(run, SETTLE_MS);
    });
    // Watching alone does not keep the process up: the server does, until it closes.
    watcher.unref();
    return watcher;
  });
  logger.info({ dirs }, `watching ${dirs.join(', ')}: a change reloads the app`);
  return () => {
    if (timer !== null) clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}
