// Build @tenantry/sdk for publishing: dist/*.js (ESM) and one self-contained dist/index.d.ts.
//
// The public types come from `AppRouter` of the private @tenantry/api workspace package, so
// its declarations must be inlined into ours:
//   1. tsc (TypeScript 7) emits the JavaScript of src/ to dist/.
//   2. tsc emits declarations of src/ and of every workspace module it reaches (mapped via
//      `paths` to their sources, so tsc treats them as ours and emits them) to dist/.types/.
//   3. The router's server-only type parameters (`ctx`: Db, Redis, Logger…; `meta`) are
//      replaced by `object` in the emitted declarations: a tRPC client never reads them, and
//      they would drag kysely, ioredis, pino, node:http… into a browser SDK's types.
//   4. rollup-plugin-dts bundles dist/.types into dist/index.d.ts, inlining @tenantry/* and
//      leaving only @trpc/client and @trpc/server as imports. TypeScript 7 has no JS compiler
//      API; the plugin then uses the TypeScript 6 API from @typescript/typescript6.
//   5. The output is checked: only @trpc/*, eventsource (and relative) imports, in .js and .d.ts alike.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';

const PKG_DIR = fileURLToPath(new URL('..', import.meta.url));
const REPO_ROOT = path.resolve(PKG_DIR, '../..');
const DIST = path.join(PKG_DIR, 'dist');
const TYPES = path.join(DIST, '.types');
const SOURCE_CONDITION = '@tenantry/source';
// eventsource: the fetch-based EventSource realtime subscriptions go over (browser-safe).
const ALLOWED_IMPORT = /^(?:@trpc\/(?:client|server)(?:\/.*)?|eventsource|\.{1,2}\/.*)$/;

const require = createRequire(import.meta.url);
const TSC = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');

function tsc(...args) {
  const result = spawnSync(process.execPath, [TSC, ...args], { cwd: PKG_DIR, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`tsc ${args.join(' ')} failed`);
}

/** `@tenantry/x[/sub]` → absolute source file, from each workspace package's `exports`. */
function workspaceSources() {
  const map = {};
  for (const group of ['apps', 'packages']) {
    const groupDir = path.join(REPO_ROOT, group);
    if (!existsSync(groupDir)) continue;
    for (const name of readdirSync(groupDir)) {
      const dir = path.join(groupDir, name);
      const manifestPath = path.join(dir, 'package.json');
      if (dir === PKG_DIR || !existsSync(manifestPath)) continue;
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
      const exportsField = typeof manifest.exports === 'string' ? { '.': manifest.exports } : (manifest.exports ?? {});
      for (const [key, target] of Object.entries(exportsField)) {
        const file = typeof target === 'string' ? target : target?.[SOURCE_CONDITION];
        if (typeof file !== 'string' || !/\.[cm]?tsx?$/.test(file)) continue;
        map[manifest.name + key.slice(1)] = path.resolve(dir, file);
      }
    }
  }
  return map;
}

function listFiles(dir, predicate, out = []) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) listFiles(file, predicate, out);
    else if (predicate(file)) out.push(file);
  }
  return out;
}

// --- step 3: strip server-only type parameters --------------------------------------------

/** `TRPCBuiltRouter<{ ctx…; meta…; errorShape…; transformer… }, …>` and the procedure forms. */
const ROUTER_OR_PROCEDURE = /\b(?:TRPC)?(?:BuiltRouter|QueryProcedure|MutationProcedure|SubscriptionProcedure)<\s*\{/g;
const SERVER_ONLY_MEMBERS = new Set(['ctx', 'meta']);

function skipQuoted(text, start) {
  const quote = text[start];
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === quote) return i;
  }
  return text.length;
}

/** Blank out comments (same length), so member names can be matched at fixed offsets. */
function blankComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (m) => m.replace(/[^\n]/g, ' '));
}

/**
 * Replace the type of the `ctx` and `meta` members of the first type argument of every
 * router / procedure type with `object`. Pure text on tsc's declaration output, with a
 * bracket-aware scan of that one object type literal.
 */
export function stripServerTypes(source) {
  const text = blankComments(source);
  const edits = [];
  for (const match of text.matchAll(ROUTER_OR_PROCEDURE)) {
    let depth = 0;
    let memberStart = match.index + match[0].length;
    const member = (end) => {
      const m = /^\s*(?:readonly\s+)?([A-Za-z_$][\w$]*)\??\s*:/.exec(text.slice(memberStart, end));
      if (m && SERVER_ONLY_MEMBERS.has(m[1])) edits.push({ from: memberStart + m[0].length, to: end });
    };
    for (let i = memberStart; i < text.length; i++) {
      const c = text[i];
      if (c === '"' || c === "'" || c === '`') i = skipQuoted(text, i);
      else if (c === '=' && text[i + 1] === '>') i++;
      else if (c === '{' || c === '[' || c === '(' || c === '<') depth++;
      else if (c === '}' || c === ']' || c === ')' || c === '>') {
        if (depth === 0) {
          member(i);
          break;
        }
        depth--;
      } else if ((c === ';' || c === ',') && depth === 0) {
        member(i);
        memberStart = i + 1;
      }
    }
  }
  edits.sort((a, b) => a.from - b.from);
  let out = '';
  let at = 0;
  for (const edit of edits) {
    if (edit.from < at) continue; // inside an edit already made
    out += `${source.slice(at, edit.from)} object`;
    at = edit.to;
  }
  return out + source.slice(at);
}

// --- step 5: checks -------------------------------------------------------------------------

function importsOf(code) {
  const specifiers = new Set();
  // Not inside a module name: `…/unstable-core-do-not-import'` ends in "import" too.
  const patterns = [/\bfrom\s*['"]([^'"]+)['"]/g, /(?<![\w$/.-])import\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) specifiers.add(m[1]);
  return [...specifiers];
}

function checkImports(file) {
  const bad = importsOf(readFileSync(file, 'utf8')).filter((s) => !ALLOWED_IMPORT.test(s));
  if (bad.length) throw new Error(`${path.relative(PKG_DIR, file)} imports ${bad.join(', ')}; only @trpc/client, @trpc/server, eventsource and relative imports may remain`);
}

// --- build ----------------------------------------------------------------------------------

async function main() {
  rmSync(DIST, { recursive: true, force: true });

  // 1. JavaScript.
  tsc('-p', 'tsconfig.build.json');

  // 2. Declarations of src/ and of the workspace modules its types reach.
  const sources = workspaceSources();
  mkdirSync(TYPES, { recursive: true });
  const dtsConfig = path.join(TYPES, 'tsconfig.json');
  writeFileSync(
    dtsConfig,
    JSON.stringify(
      {
        extends: path.join(PKG_DIR, 'tsconfig.json'),
        compilerOptions: {
          noEmit: false,
          declaration: true,
          emitDeclarationOnly: true,
          rootDir: REPO_ROOT,
          outDir: TYPES,
          paths: Object.fromEntries(Object.entries(sources).map(([spec, file]) => [spec, [file]])),
        },
        include: [path.join(PKG_DIR, 'src/**/*.ts')],
        exclude: [path.join(PKG_DIR, 'src/**/*.test.ts')],
      },
      null,
      2,
    ),
  );
  tsc('-p', dtsConfig);

  // 3. Cut the server-only type parameters.
  for (const file of listFiles(TYPES, (f) => f.endsWith('.d.ts'))) {
    const text = readFileSync(file, 'utf8');
    const stripped = stripServerTypes(text);
    if (stripped !== text) writeFileSync(file, stripped);
  }

  // 4. Bundle, inlining @tenantry/* (mapped to their emitted declarations).
  const declarationOf = (file) => path.join(TYPES, path.relative(REPO_ROOT, file)).replace(/\.([cm]?)tsx?$/, '.d.$1ts');
  const bundle = await rollup({
    input: path.join(TYPES, path.relative(REPO_ROOT, PKG_DIR), 'src/index.d.ts'),
    plugins: [
      dts({
        compilerOptions: {
          paths: Object.fromEntries(Object.entries(sources).map(([spec, file]) => [spec, [declarationOf(file)]])),
        },
      }),
    ],
    onwarn(warning, warn) {
      // Modules the tree-shaken declarations no longer use (zod, kysely, …) cannot be
      // resolved from dist/.types; harmless as long as nothing imports them (checked below).
      if (warning.code === 'UNRESOLVED_IMPORT') return;
      warn(warning);
    },
  });
  await bundle.write({ file: path.join(DIST, 'index.d.ts'), format: 'es' });
  await bundle.close();
  rmSync(TYPES, { recursive: true, force: true });

  // 5. Nothing but @trpc/* and eventsource may be imported by what we publish.
  for (const file of listFiles(DIST, (f) => /\.(?:d\.ts|js)$/.test(f))) checkImports(file);
  console.log(`built ${path.relative(REPO_ROOT, DIST)}: ${readdirSync(DIST).join(', ')}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
