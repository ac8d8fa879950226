/**
 * Summarise V8 CPU profiles (`node --cpu-prof`): where a process spent its CPU, by package
 * or source file (self time), and which of our own functions the time was spent under
 * (inclusive time: a sample counts once for every distinct function on its stack).
 *
 *   npx tsx test/bench/profile-summary.ts <profile.cpuprofile | directory> [--top 25]
 *
 * `BENCH_SERVER_PROFILE_DIR=<dir> pnpm bench:data-plane` writes the profiles of every server
 * session (api, unmetered, bare) under <dir>; each main thread's is summarised separately. Idle time (the
 * `(idle)` and `(program)` nodes) is left out of the percentages: they are of CPU used.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const IDLE = new Set(['(idle)', '(program)']);

/** `kysely`, `@trpc/server`, `node:internal`, or the file under the repository. */
function ownerOf(url: string): string {
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return url.startsWith('node:internal') ? 'node:internal' : url;
  const pnpm = url.match(/node_modules\/\.pnpm\/([^/]+)\/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pnpm) return pnpm[2]!;
  const plain = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (plain) return plain[1]!;
  const repo = url.match(/\/(apps|packages|test)\/(.*)$/);
  return repo ? `${repo[1]}/${repo[2]}` : url;
}

const isOurs = (url: string) => !url.includes('node_modules') && /\/(apps|packages)\//.test(url);

function summarise(file: string, top: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const leaf = byId.get(id)!;
    if (IDLE.has(leaf.callFrame.functionName)) return;
    busy += us;
    const owner = ownerOf(leaf.callFrame.url) || leaf.callFrame.functionName;
    self.set(owner, (self.get(owner) ?? 0) + us);
    const seen = new Set<string>();
    for (let node: ProfileNode | undefined = leaf; node; node = byId.get(parent.get(node.id) ?? -1)) {
      const { functionName, url, lineNumber } = node.callFrame;
      if (!isOurs(url)) continue;
      const key = `${functionName || '(anonymous)'}  ${ownerOf(url)}:${lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  });

  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  console.log(`\n${path.relative(process.cwd(), file)}: ${(busy / 1000).toFixed(0)} ms of CPU over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s`);
  console.log('  self time by package / file');
  for (const [owner, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`   ${pct(us)}  ${owner}`);
  console.log('  inclusive time under our functions');
  for (const [key, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`   ${pct(us)}  ${key}`);
}

const args = process.argv.slice(2);
const target = args.find((a) => !a.startsWith('--'));
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
if (!target) {
  console.error('usage: profile-summary.ts <profile.cpuprofile | directory> [--top N]');
  process.exit(2);
}
/** Every profile under `dir`, however deep (the benchmark writes a directory per server session). */
function profilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return profilesUnder(full);
      return entry.name.endsWith('.cpuprofile') ? [full] : [];
    });
}

// A session's main thread is the profile that matters; its module-loader thread's (tsx)
// is small and only says how long compiling took.
const MIN_BYTES = 200_000;
const files = statSync(target).isDirectory() ? profilesUnder(target).filter((f) => statSync(f).size >= MIN_BYTES) : [target];
for (const file of files) summarise(file, top);
