import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * The api serves the build at /dashboard/ (same origin as /trpc, so the session cookie and
 * a strict Content-Security-Policy just work). Hashed files go to assets/, which the api
 * caches forever; nothing is inlined into index.html (the CSP allows no inline script).
 */
export default defineConfig({
  base: '/dashboard/',
  plugins: [react()],
  resolve: {
    // The SDK resolves to its source in this workspace. Setting conditions replaces
    // Vite's defaults, so they are listed again.
    conditions: ['@tenantry/source', 'module', 'browser', 'development|production'],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
  server: {
    // `pnpm --filter @tenantry/dashboard dev`: hot reload against an api on :3000.
    proxy: { '/trpc': 'http://127.0.0.1:3000' },
  },
});
