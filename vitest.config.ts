import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages that publish built output (the SDK) resolve to their TypeScript
  // source in tests through this condition. Setting conditions replaces Vite's defaults,
  // so they are listed again.
  ssr: { resolve: { conditions: ['@tenantry/source', 'module', 'node', 'development|production'] } },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts', 'test/support/dashboard-build.ts'],
    // Files run in parallel (each with its own database and Redis prefix); tests within a
    // file run in order.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
