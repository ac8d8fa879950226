import { readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * @tenantry/sdk must run in browsers: its source may import only @trpc/client (and
 * @trpc/server types) and use standard web APIs. This fails on any Node builtin import,
 * with or without the `node:` prefix, and on Node-only globals.
 */
const SDK_DIR = fileURLToPath(new URL('../packages/sdk/', import.meta.url));
const SRC_DIR = path.join(SDK_DIR, 'src');
const CODE_FILE = /\.(?:[cm]?[jt]sx?)$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) return sourceFiles(file);
    return CODE_FILE.test(name) ? [file] : [];
  });
}

/** Blank out comments (strings kept: import specifiers are strings). */
function withoutComments(code: string): string {
  let out = '';
  for (let i = 0; i < code.length; i++) {
    const c = code[i]!;
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < code.length && code[j] !== c) j += code[j] === '\\' ? 2 : 1;
      out += code.slice(i, j + 1);
      i = j;
    } else if (c === '/' && code[i + 1] === '/') {
      while (i < code.length && code[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && code[i + 1] === '*') {
      const end = code.indexOf('*/', i + 2);
      i = end === -1 ? code.length : end + 1;
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

/** Blank out string contents too, for looking at identifiers only. */
function withoutStrings(code: string): string {
  return code.replace(/(['"`])(?:\\.|(?!\1)[^\\])*\1/g, '""');
}

/** Every module a file loads: static, side-effect, re-export, dynamic, require, triple-slash types. */
export function importedModules(code: string): string[] {
  const found: string[] = [];
  for (const m of code.matchAll(/\/\/\/\s*<reference\s+types\s*=\s*["']([^"']+)["']/g)) found.push(m[1]!);
  const stripped = withoutComments(code);
  const patterns = [
    /\b(?:import|export)\s[^;]*?\bfrom\s*(['"])([^'"]+)\1/g,
    /\bimport\s*(['"])([^'"]+)\1/g,
    /\bimport\s*\(\s*(['"`])([^'"`]+)\1\s*[,)]/g,
    /\brequire\s*\(\s*(['"`])([^'"`]+)\1\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of stripped.matchAll(pattern)) found.push(m[2]!);
  return found;
}

const BUILTINS = new Set(builtinModules);
function isNodeBuiltin(specifier: string): boolean {
  return specifier === 'node' || specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0]!);
}

const NODE_GLOBALS = /(?<![\w$.])(?:Buffer|process|__dirname|__filename|setImmediate|clearImmediate|global|require)(?![\w$])/g;

describe('@tenantry/sdk is browser-safe', () => {
  const files = sourceFiles(SRC_DIR);

  it('has source files to check', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files.map((f) => path.basename(f))).toContain('index.ts');
  });

  it('no file in packages/sdk/src imports a Node builtin', () => {
    const offenders = files.flatMap((file) =>
      importedModules(readFileSync(file, 'utf8'))
        .filter(isNodeBuiltin)
        .map((specifier) => `${path.relative(SDK_DIR, file)}: ${specifier}`),
    );
    expect(offenders).toEqual([]);
  });

  it('no file in packages/sdk/src uses a Node-only global', () => {
    const offenders = files.flatMap((file) =>
      [...withoutStrings(withoutComments(readFileSync(file, 'utf8'))).matchAll(NODE_GLOBALS)].map((m) => `${path.relative(SDK_DIR, file)}: ${m[0]}`),
    );
    expect(offenders).toEqual([]);
  });

  it('imports nothing at runtime but @trpc/client and its own files', () => {
    const packages = new Set(
      files.flatMap((file) => importedModules(readFileSync(file, 'utf8'))).filter((s) => !s.startsWith('.')),
    );
    // @tenantry/api only for types (`import type`, erased); @trpc/server only for types too.
    // eventsource: a spec EventSource over fetch (realtime subscriptions that can send the
    // Authorization header), itself free of Node builtins (checked below).
    expect([...packages].sort()).toEqual(['@tenantry/api', '@trpc/client', '@trpc/server', 'eventsource']);
    const manifest = JSON.parse(readFileSync(path.join(SDK_DIR, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    expect(Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }).sort()).toEqual(['@trpc/client', '@trpc/server', 'eventsource']);
    for (const file of files) {
      const code = withoutComments(readFileSync(file, 'utf8'));
      for (const m of code.matchAll(/\bimport\s+(type\s+)?[^;]*?\bfrom\s*['"](@tenantry\/api|@trpc\/server)['"]/g)) {
        expect(m[1], `${path.relative(SDK_DIR, file)}: value import of ${m[2]}`).toBeDefined();
      }
    }
  });

  it('eventsource, the one runtime dependency besides tRPC, loads no Node builtin either', () => {
    const dist = path.join(path.dirname(fileURLToPath(import.meta.resolve('eventsource', pathToFileURL(path.join(SDK_DIR, 'package.json')).href))), '');
    const code = sourceFiles(dist).filter((f) => /\.js$/.test(f)).map((f) => readFileSync(f, 'utf8'));
    expect(code.length).toBeGreaterThan(0);
    expect(code.flatMap((c) => importedModules(c)).filter(isNodeBuiltin)).toEqual([]);
  });

  it('the check itself catches every import form', () => {
    const sample = [
      "import fs from 'fs';",
      "import { createHash } from 'node:crypto';",
      "import type { IncomingMessage } from 'http';",
      "export { x } from 'node:path';",
      "import 'node:process';",
      "const p = await import('fs/promises');",
      "const u = require('url');",
      '/// <reference types="node" />',
      "import {\n  a,\n  b,\n} from 'stream';",
      "// import 'node:os' is a comment",
      "import { ok } from '@trpc/client';",
    ].join('\n');
    expect(importedModules(sample).filter(isNodeBuiltin).sort()).toEqual(
      ['fs', 'node:crypto', 'http', 'node:path', 'node:process', 'fs/promises', 'url', 'node', 'stream'].sort(),
    );
  });
});
