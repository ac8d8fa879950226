// Build the api and the worker for running: apps/<app>/dist/main.mjs, each one ES module
// holding that app and every workspace package it uses, run with plain Node:
//
//   node scripts/build-apps.mjs [api] [worker]      (also: pnpm build)
//   node --enable-source-maps apps/api/dist/main.mjs
//
// Why: under `node --import tsx`, every one of the ~2,000 modules an app loads goes through
// tsx's loader hooks, which run in a thread of their own and answer each resolve and load
// by message. An api then spent about 4.6 s of CPU (2.7 s on its main thread, 1.9 s in the
// hooks' thread) and 2.5–3.5 s of wall time before it answered /healthz on an idle 2-core
// machine, and over 10 s on a busy one: every rolling restart, crash restart or scale-up
// took that CPU from the instances still serving. Compiled ahead of time, the workspace's
// TypeScript is a single file and third-party packages load as plain Node modules.
//
// What the bundle holds, and what it does not:
// - Workspace code (apps/*, packages/*, imported as @tenantry/… or relatively) is bundled.
// - Third-party packages stay outside: Node loads them from node_modules, exactly as in
//   development (native addons like argon2, and packages that read their own files, work
//   unchanged). pnpm gives each workspace package only its own dependencies, so each
//   import is resolved from the file that makes it and imported by its path relative to
//   the bundle: a bundle belongs to the node_modules it was built against — build it after
//   every install, as `pnpm build` and scripts/start.mjs do.
// - `import.meta.url` in workspace code still names the source file it is written in, so
//   paths relative to it (the dashboard's build, data files, a dependency's own files)
//   resolve as they do from source.
// - keepNames: bundling renames clashing identifiers (two modules' `NotFoundError`), and
//   error classes' names are part of what the apps log and answer.
import { builtinModules } from 'node:module';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const APPS = ['api', 'worker'];

/** Where an app's bundle is. */
export const bundleOf = (app) => path.join(ROOT, 'apps', app, 'dist', 'main.mjs');

const BUILTINS = new Set(builtinModules);
const isWorkspaceFile = (file) => !file.split(path.sep).includes('node_modules');

/** Third-party imports stay external, by their resolved path relative to the bundle. */
function externalDependencies(outdir) {
  return {
    name: 'tenantry-external-dependencies',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.path.startsWith('node:') || BUILTINS.has(args.path.split('/')[0])) return { external: true };
        if (args.path.startsWith('@tenantry/') || args.pluginData === 'resolving') return undefined;
        const resolved = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'resolving' });
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        if (isWorkspaceFile(resolved.path)) return { path: resolved.path };
        const relative = path.relative(outdir, resolved.path).split(path.sep).join('/');
        return { path: relative.startsWith('.') ? relative : `./${relative}`, external: true };
      });
      build.onLoad({ filter: /\.[cm]?tsx?$/ }, async (args) => {
        if (!isWorkspaceFile(args.path)) return undefined;
        const source = await readFile(args.path, 'utf8');
        return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
      });
    },
  };
}

/** Bundle the given apps (default: both). Resolves when every bundle is written. */
export async function buildApps(apps = APPS) {
  for (const app of apps) {
    if (!APPS.includes(app)) throw new Error(`unknown app ${JSON.stringify(app)} (${APPS.join(', ')})`);
    const outfile = bundleOf(app);
    const { outputFiles } = await esbuild.build({
      entryPoints: [path.join(ROOT, 'apps', app, 'src', 'main.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20.19',
      // As Node resolves: its conditions and `main` only (esbuild would add `module`).
      conditions: ['node'],
      mainFields: ['main'],
      keepNames: true,
      sourcemap: 'linked',
      logLevel: 'warning',
      plugins: [externalDependencies(path.dirname(outfile))],
      write: false,
    });
    // Each file replaced at once (written aside, then renamed over): a process starting
    // the app meanwhile, or a second build running beside this one, never sees half a file.
    await mkdir(path.dirname(outfile), { recursive: true });
    for (const file of outputFiles) {
      const aside = `${file.path}.${process.pid}.tmp`;
      await writeFile(aside, file.contents);
      await rename(aside, file.path);
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  const apps = process.argv.slice(2);
  await buildApps(apps.length > 0 ? apps : APPS);
  console.log(`built ${(apps.length > 0 ? apps : APPS).map((app) => path.relative(ROOT, bundleOf(app))).join(', ')} in ${Math.round(performance.now() - started)} ms`);
}
