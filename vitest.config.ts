import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages that publish built output (the SDK) resolve to their TypeScript
  // source in tests through this condition. Setting conditions replaces Vite's defaults,
  // so they are listed again.
  // `module` is left out on purpose: the AWS SDK's builds for it import files without
  // extensions, which Node's loader (that runs externalized packages) refuses; without it
  // packages resolve as Node itself resolves them.
  ssr: { resolve: { conditions: ['@tenantry/source', 'node', 'development|production'] } },
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
