// Check the built package as a consumer outside this workspace gets it: `npm pack` it,
// unpack it into a temporary project next to only its dependencies (@trpc/client, @trpc/server, eventsource), then
//   - type-check a consumer file against dist/index.d.ts with skipLibCheck off, with
//     TypeScript 7 and TypeScript 6, under NodeNext and bundler resolution;
//   - import dist/index.js in Node and make one call that fails (network_error).
// Run after the build: `pnpm --filter @tenantry/sdk run check:dist`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG_DIR = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(path.join(PKG_DIR, 'package.json'));
const packageDir = (name) => path.dirname(realpathSync(require.resolve(`${name}/package.json`)));
const TSC7 = path.join(packageDir('typescript'), 'bin', 'tsc');
const TSC6 = path.join(packageDir('@typescript/typescript6'), 'bin', 'tsc6');

const CONSUMER = `
import {
  type RouterInputs,
  type RouterOutputs,
  type TenantryClient,
  TenantryError,
  createAdminClient,
  createPublicClient,
  createTenantClient,
  isTenantryError,
} from '@tenantry/sdk';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assert<T extends true>(): T | void {}

export async function consumer(): Promise<void> {
  const anon = createPublicClient({ baseUrl: 'https://api.example.com' });
  const session = await anon.auth.login.mutate({ email: 'a@example.com', password: 'pw' });
  assert<Equal<typeof session.token, string>>();

  const tenant: TenantryClient = createTenantClient({ baseUrl: 'https://api.example.com', token: () => session.token });
  const me = await tenant.auth.me.query();
  assert<Equal<typeof me, RouterOutputs['auth']['me']>>();
  assert<Equal<typeof me.tenant.name, string>>();
  assert<Equal<typeof me.user.role, 'owner' | 'admin' | 'member'>>();
  assert<Equal<RouterInputs['auth']['login'], { email: string; password: string }>>();

  // @ts-expect-error: no such procedure
  void tenant.auth.nope;
  // @ts-expect-error: login takes strings
  void anon.auth.login.mutate({ email: 1, password: 'pw' });

  const admin = createAdminClient({ baseUrl: 'https://api.example.com', platformKey: 'key' });
  void admin;

  try {
    await tenant.auth.me.query();
  } catch (error) {
    if (isTenantryError(error)) {
      assert<Equal<typeof error.code, string>>();
      assert<Equal<typeof error.status, number>>();
      const fields: { field: string; message: string }[] | undefined = error.fields;
      void fields;
      void (error instanceof TenantryError && error.cause.message);
    }
  }
}
`;

const RUNTIME = `
import * as sdk from '@tenantry/sdk';
const expected = ['TenantryError', 'createAdminClient', 'createClient', 'createOperatorClient', 'createPublicClient', 'createTenantClient', 'isTenantryError', 'toTenantryError'];
const missing = expected.filter((name) => typeof sdk[name] !== 'function');
if (missing.length) throw new Error('missing exports: ' + missing.join(', '));
const client = sdk.createPublicClient({ baseUrl: 'http://127.0.0.1:9' });
try {
  await client.signup.status.query({ signupId: 'x' });
  throw new Error('expected a failure');
} catch (error) {
  if (!sdk.isTenantryError(error) || error.code !== 'network_error' || error.status !== 0) throw error;
}
console.log('runtime ok: ESM import, network_error');
`;

function tsconfig(moduleResolution) {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      // ESNext.Disposable: @trpc/server's own declarations use Disposable (or get it from @types/node).
      lib: ['ES2023', 'ESNext.Disposable', 'DOM', 'DOM.Iterable'],
      module: moduleResolution === 'bundler' ? 'ESNext' : 'NodeNext',
      moduleResolution,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: [],
    },
    files: ['consumer.ts'],
  });
}

const work = mkdtempSync(path.join(os.tmpdir(), 'tenantry-sdk-check-'));
try {
  execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: PKG_DIR, stdio: ['ignore', 'pipe', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  const listing = execFileSync('tar', ['-tzf', path.join(work, tarball)], { encoding: 'utf8' }).trim().split('\n');
  console.log(`packed ${tarball}: ${listing.map((f) => f.replace(/^package\//, '')).join(', ')}`);

  const project = path.join(work, 'consumer');
  const modules = path.join(project, 'node_modules');
  mkdirSync(path.join(modules, '@tenantry'), { recursive: true });
  mkdirSync(path.join(modules, '@trpc'), { recursive: true });
  execFileSync('tar', ['-xzf', path.join(work, tarball), '-C', path.join(modules, '@tenantry')]);
  execFileSync('mv', [path.join(modules, '@tenantry', 'package'), path.join(modules, '@tenantry', 'sdk')]);
  for (const name of ['client', 'server']) symlinkSync(packageDir(`@trpc/${name}`), path.join(modules, '@trpc', name), 'dir');
  // The SDK's one other dependency (realtime subscriptions), as a consumer's install would have it.
  symlinkSync(packageDir('eventsource'), path.join(modules, 'eventsource'), 'dir');
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(path.join(project, 'consumer.ts'), CONSUMER);
  writeFileSync(path.join(project, 'runtime.mjs'), RUNTIME);

  for (const [label, tsc] of [
    ['TypeScript 7', TSC7],
    ['TypeScript 6', TSC6],
  ]) {
    for (const resolution of ['NodeNext', 'bundler']) {
      writeFileSync(path.join(project, 'tsconfig.json'), tsconfig(resolution));
      execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, stdio: 'inherit' });
      console.log(`types ok: ${label}, moduleResolution ${resolution}, skipLibCheck off`);
    }
  }
  execFileSync(process.execPath, ['runtime.mjs'], { cwd: project, stdio: 'inherit' });
} finally {
  rmSync(work, { recursive: true, force: true });
}
