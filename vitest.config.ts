import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // End-to-end suites start servers with worker threads; two cores, so keep file parallelism modest.
    maxWorkers: 2,
  },
});
