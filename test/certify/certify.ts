/**
 * `pnpm certify [--only <id>,…] [--commands <file.json>] [--out <dir>] [--date YYYY-MM-DD]`
 *
 * Runs the milestone validation (commands.ts), one command after another, and writes the
 * packet docs/certification/<date>.md: every command with its exit code, duration and key
 * figures, the Definition-of-Done table, the risk register, the rollback runbook and the
 * verdict computed by the rules of verdict.ts. The verdict line is printed last. Exit 0 for
 * GO and GO_WITH_CONDITIONS, 1 for NO_GO, 2 when it cannot run (a test file in no area).
 *
 * `--commands` replaces the command list with a JSON array of commands (runner.ts,
 * CertCommand): the test of this generator runs it on a small fixture. `--only` keeps the
 * default commands with those ids (to rerun one area); such a packet says which list ran,
 * and its Definition-of-Done rows without evidence make it NO_GO.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { commandEnv } from '../support/env.js';
import { UnmappedTestFileError, listTestFiles, mapTestFiles } from './areas.js';
import { OUTPUT_DIR, defaultCommands } from './commands.js';
import { evaluateDod, renderPacket } from './packet.js';
import { type CertCommand, runCommands } from './runner.js';
import { decide, verdictLine } from './verdict.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function revision(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

const { values } = parseArgs({ options: { only: { type: 'string' }, commands: { type: 'string' }, out: { type: 'string' }, date: { type: 'string' } }, strict: true });
const date = values.date ?? new Date().toISOString().slice(0, 10);
if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
  console.error(`certify: --date ${JSON.stringify(date)} is not YYYY-MM-DD`);
  process.exit(2);
}

let areas: ReturnType<typeof mapTestFiles>;
try {
  areas = mapTestFiles(listTestFiles(ROOT));
} catch (err) {
  if (!(err instanceof UnmappedTestFileError)) throw err;
  console.error(`certify: ${err.message}`);
  process.exit(2);
}
const areaOf = new Map([...areas].flatMap(([area, files]) => files.map((f) => [f, area] as const)));

let commands: CertCommand[] = values.commands ? (JSON.parse(readFileSync(values.commands, 'utf8')) as CertCommand[]) : defaultCommands(areas);
if (values.only) {
  const only = new Set(values.only.split(','));
  const unknown = [...only].filter((id) => !commands.some((c) => c.id === id));
  if (unknown.length > 0) {
    console.error(`certify: --only: no command ${unknown.join(', ')} (ids: ${commands.map((c) => c.id).join(', ')})`);
    process.exit(2);
  }
  commands = commands.filter((c) => only.has(c.id));
}
const startedAt = new Date();
console.log(`certify: ${commands.length} commands${values.commands ? ` from ${values.commands}` : ''}; logs in ${OUTPUT_DIR}/logs`);
let n = 0;
const results = await runCommands(commands, {
  root: ROOT,
  logDir: path.join(ROOT, OUTPUT_DIR, 'logs'),
  env: commandEnv(),
  onStart: (c) => process.stdout.write(`[${++n}/${commands.length}] ${c.id} … `),
  onDone: (r) => console.log(`${r.passed ? 'passed' : `FAILED (${r.failure}${r.detail ? `: ${r.detail}` : ''})`} in ${(r.durationMs / 1000).toFixed(1)} s${r.misses.length ? `, ${r.misses.length} target(s) missed` : ''}`),
});
const finishedAt = new Date();

const dod = evaluateDod(results, areaOf);
const decision = decide(results, dod);
const packet = renderPacket(results, decision, dod, {
  date,
  startedAt,
  finishedAt,
  machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
  revision: revision(),
  root: ROOT,
  areas,
  commandSource: [values.commands && `commands from ${values.commands}`, values.only && `only ${values.only}`].filter(Boolean).join(', ') || undefined,
});
const outDir = path.resolve(ROOT, values.out ?? 'docs/certification');
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, `${date}.md`);
writeFileSync(file, packet);
console.log(`packet: ${file}`);
for (const { rule, evidence } of decision.applied) console.log(`rule ${rule.id} → ${rule.verdict}, ${rule.posture} (${evidence.length}): ${evidence.slice(0, 3).join('; ')}${evidence.length > 3 ? '; …' : ''}`);
console.log(verdictLine(decision));
process.exitCode = decision.verdict === 'NO_GO' ? 1 : 0;
