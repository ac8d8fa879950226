import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Files run in parallel (each with its own database and Redis prefix); tests within a
    // file run in order.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
