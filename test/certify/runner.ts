import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Area } from './areas.js';

/**
 * Runs the certification's commands one after another and keeps, for each, what the packet
 * needs as evidence: exit code, duration, its output (in a log file) and key figures.
 *
 * The evidence contract: a command passes only if it exited 0 within its time, printed
 * something, and printed its closing line (`completes`); a timed-out, empty or truncated
 * command counts as failed, whatever its exit code.
 */
export type CommandKind = 'typecheck' | 'tests' | 'audit' | 'promtool' | 'openapi-lint' | 'bench';

export interface CertCommand {
  /** Stable id (evidence in the Definition-of-Done table names it), e.g. `tests:security`. */
  id: string;
  title: string;
  kind: CommandKind;
  area?: Area;
  /** Program and arguments; run from the repository root, no shell. */
  argv: string[];
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  timeoutMs: number;
  /** A regular expression (source) the output matches once the command has finished its work; without a match the output is truncated. */
  completes?: string;
  /** tests: where vitest writes its JSON report (per-file results). */
  reportFile?: string;
  /** bench: the benchmark's target(s), for the packet. */
  target?: string;
  /** A regular expression (source): the output lines matching it are kept as key figures (a benchmark's summary lines). */
  keyLines?: string;
}

export type Failure = 'exit code' | 'timed out' | 'empty output' | 'truncated output' | 'did not start';

export interface CommandResult {
  id: string;
  title: string;
  kind: CommandKind;
  area?: Area | undefined;
  target?: string | undefined;
  /** The command as a person would type it. */
  shown: string;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  passed: boolean;
  failure?: Failure | undefined;
  /** Why, in words, when it failed. */
  detail?: string | undefined;
  figures: Record<string, string | number>;
  /** bench: the targets it printed as missed (`MISS` lines). */
  misses: string[];
  /** The output lines `keyLines` picked, whitespace collapsed. */
  keyLines: string[];
  /** tests: file → result, from vitest's JSON report. */
  files: Record<string, 'passed' | 'failed' | 'skipped'>;
  logFile: string;
}

export interface RunOptions {
  root: string;
  logDir: string;
  env: NodeJS.ProcessEnv;
  /** Output kept per command; past it the output counts as truncated. */
  maxOutputBytes?: number;
  onStart?: (command: CertCommand) => void;
  onDone?: (result: CommandResult) => void;
}

const DEFAULT_MAX_OUTPUT = 32 * 1024 * 1024;
// ANSI colour and cursor sequences, in case a tool colours its output anyway.
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

export function shownCommand(command: CertCommand): string {
  const env = Object.entries(command.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return [...env, ...command.argv].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

interface Exit {
  code: number | null;
  signal: string | null;
  output: string;
  timedOut: boolean;
  overflowed: boolean;
  spawnError?: string;
}

function runOne(command: CertCommand, options: RunOptions): Promise<Exit> {
  const max = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  return new Promise((resolve) => {
    const [file, ...args] = command.argv;
    const chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    let timedOut = false;
    // Its own process group, so a timeout ends everything it started (vitest's forks, pnpm's children).
    const child = spawn(file!, args, { cwd: options.root, env: { ...options.env, ...command.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const take = (chunk: Buffer) => {
      if (size + chunk.length > max) {
        overflowed = true;
        chunks.push(chunk.subarray(0, Math.max(0, max - size)));
        size = max;
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 5_000).unref();
    }, command.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, output: '', timedOut: false, overflowed: false, spawnError: err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever it left behind in its group (a server a test started) goes with it.
      killGroup('SIGKILL');
      resolve({ code, signal, output: Buffer.concat(chunks).toString('utf8').replace(ANSI, ''), timedOut, overflowed });
    });
  });
}

/** vitest's JSON report: totals and each file's result. */
function readVitestReport(file: string, root: string): { figures: Record<string, number>; files: CommandResult['files'] } | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const report = JSON.parse(readFileSync(file, 'utf8')) as {
      numTotalTests: number;
      numPassedTests: number;
      numFailedTests: number;
      numPendingTests: number;
      numTodoTests?: number;
      testResults: Array<{ name: string; status: string }>;
    };
    const files: CommandResult['files'] = {};
    for (const r of report.testResults) {
      files[path.relative(root, r.name)] = r.status === 'passed' ? 'passed' : r.status === 'failed' ? 'failed' : 'skipped';
    }
    return {
      figures: {
        files: report.testResults.length,
        tests: report.numTotalTests,
        passed: report.numPassedTests,
        failed: report.numFailedTests,
        skipped: report.numPendingTests + (report.numTodoTests ?? 0),
      },
      files,
    };
  } catch {
    return undefined;
  }
}

/** Key figures a command's output states, by kind. */
function figuresOf(kind: CommandKind, output: string): { figures: Record<string, string | number>; misses: string[] } {
  const figures: Record<string, string | number> = {};
  const misses: string[] = [];
  if (kind === 'bench') {
    const lines = output.split('\n');
    // The benchmarks print PASS or MISS (test/bench/support.ts, verdict) on each target's line; bench:scale says FAIL.
    const passes = lines.filter((l) => /\bPASS\b/.test(l));
    for (const l of lines) if (/\b(MISS|FAIL)\b/.test(l)) misses.push(l.trim().replace(/\s+/g, ' '));
    if (passes.length + misses.length > 0) {
      figures['targets met'] = passes.length;
      figures['targets missed'] = misses.length;
    }
  } else if (kind === 'typecheck') {
    const tasks = /Tasks:\s+(\d+) successful, (\d+) total/.exec(output);
    if (tasks) figures.packages = `${tasks[1]}/${tasks[2]} clean`;
  } else if (kind === 'audit') {
    const intact = /audit chain intact: (\d+) entries/.exec(output);
    if (intact) figures['entries verified'] = Number(intact[1]);
    if (/audit chain BROKEN/.test(output)) figures.chain = 'broken';
  } else if (kind === 'openapi-lint') {
    // Redocly exits 0 with warnings; the count is kept so the packet shows them.
    const warnings = /You have (\d+) warnings?/.exec(output);
    if (warnings) figures.warnings = Number(warnings[1]);
    const problems = /(\d+) problems? \((\d+) errors?, (\d+) warnings?/.exec(output);
    if (problems) figures.problems = Number(problems[1]);
  } else if (kind === 'promtool') {
    const tests = output.match(/SUCCESS/g);
    if (tests) figures.SUCCESS = tests.length;
  }
  return { figures, misses };
}

/** Run every command, in order, whatever the earlier ones did. */
export async function runCommands(commands: readonly CertCommand[], options: RunOptions): Promise<CommandResult[]> {
  mkdirSync(options.logDir, { recursive: true });
  const results: CommandResult[] = [];
  for (const command of commands) {
    options.onStart?.(command);
    if (command.reportFile) rmSync(path.resolve(options.root, command.reportFile), { force: true });
    const started = performance.now();
    const exit = await runOne(command, options);
    const durationMs = Math.round(performance.now() - started);
    const logFile = path.join(options.logDir, `${command.id.replace(/[^A-Za-z0-9_.-]+/g, '-')}.log`);
    writeFileSync(logFile, `$ ${shownCommand(command)}\n${exit.output}${exit.spawnError ? `\n[did not start: ${exit.spawnError}]\n` : ''}`);

    const { figures, misses } = figuresOf(command.kind, exit.output);
    const keyLines = command.keyLines ? exit.output.split('\n').filter((l) => new RegExp(command.keyLines!).test(l)).map((l) => l.trim().replace(/\s+/g, ' ')).slice(0, 20) : [];
    let files: CommandResult['files'] = {};
    let reportMissing = false;
    if (command.reportFile) {
      const report = readVitestReport(path.resolve(options.root, command.reportFile), options.root);
      if (report) {
        Object.assign(figures, report.figures);
        files = report.files;
      } else {
        reportMissing = true;
      }
    }

    // Evidence first: how it ended, then whether what it printed is whole.
    let failure: Failure | undefined;
    let detail: string | undefined;
    if (exit.spawnError) [failure, detail] = ['did not start', exit.spawnError];
    else if (exit.timedOut) [failure, detail] = ['timed out', `no exit within ${command.timeoutMs / 1000} s; its process group was killed`];
    else if (exit.output.trim() === '') [failure, detail] = ['empty output', 'it printed nothing: no evidence'];
    else if (exit.code !== 0) [failure, detail] = ['exit code', `exited ${exit.code ?? `on ${exit.signal}`}`];
    else if (exit.overflowed) [failure, detail] = ['truncated output', `more than ${options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT} bytes of output`];
    else if (command.completes && !new RegExp(command.completes, 'm').test(exit.output)) [failure, detail] = ['truncated output', `its closing line (/${command.completes}/) never came`];
    else if (reportMissing) [failure, detail] = ['truncated output', `no test report at ${command.reportFile}`];

    const result: CommandResult = {
      id: command.id,
      title: command.title,
      kind: command.kind,
      area: command.area,
      target: command.target,
      shown: shownCommand(command),
      exitCode: exit.code,
      signal: exit.signal,
      durationMs,
      passed: failure === undefined,
      failure,
      detail,
      figures,
      misses,
      keyLines,
      files,
      logFile,
    };
    results.push(result);
    options.onDone?.(result);
  }
  return results;
}
