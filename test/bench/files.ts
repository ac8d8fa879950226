/**
 * File throughput: a 100 MiB file uploaded and downloaded through the api, against the
 * same bytes written to and read from the api's own storage driver directly, in the same run.
 *
 *   pnpm bench:files      (or: npx tsx test/bench/files.ts)
 *
 * Setup (not measured): a database of its own (`tenantry_bench_files_<random>`, dropped at
 * the end), an api in a child process (so it does not share the load generator's event
 * loop) and a worker in-process to provision one tenant, whose fileBytes and
 * fileStorageBytes are raised for the run. Driver: local (a temporary directory), or s3
 * when BENCH_S3=1 (an s3rver started for the run).
 *
 * Measured, BENCH_ROUNDS times (default 3) after one uncounted warm-up round, alternating
 * which goes first:
 *   api upload    — PUT /v1/files/bench-<n> with Content-Length, from memory over node:http;
 *   direct write  — the driver's write() of the same bytes (same chunking) in this process;
 *   api download  — GET of that file, bytes read and dropped;
 *   direct read   — the driver's read() of the direct copy, bytes read and dropped.
 * It prints MiB/s of each (median of the rounds) and api ÷ direct as a ratio, against the
 * target of 70 %, and the CPU time the api process spent per MiB moved (from /proc); exits
 * 0 either way, 1 only when something breaks.
 *
 * Env: BENCH_FILE_MIB (100), BENCH_ROUNDS (3), BENCH_S3 (unset), TEST_DATABASE_URL / TEST_REDIS_URL,
 * BENCH_API_PROFILE_DIR (unset; a directory: the api child runs with `--cpu-prof` into it,
 * written when it exits after the run — summarise with test/bench/profile-summary.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createFileStorage } from '@tenantry/files';
import { startWorker } from '../support/apps.js';
import { request, validSignup, waitForSignup } from '../support/http.js';
import { startApiProcess } from '../support/process.js';
import { deleteRedisKeys } from '../support/redis.js';
import { PrivateS3 } from '../support/s3-server.js';
import { benchDatabase, machineLine, median, newRunId, positiveInt, runBenchmark, verdict } from './support.js';

const MIB = 1024 * 1024;
const TARGET = 0.7;

function chunks(data: Buffer): Readable {
  let offset = 0;
  return new Readable({
    read() {
      this.push(offset < data.length ? data.subarray(offset, (offset += MIB)) : null);
    },
  });
}

async function drain(stream: NodeJS.ReadableStream): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

function upload(baseUrl: string, token: string, key: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(baseUrl);
    const req = httpRequest({ hostname, port, path: `/v1/files/${key}`, method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-length': String(data.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    chunks(data).pipe(req);
  });
}

function download(baseUrl: string, token: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(baseUrl);
    const req = httpRequest({ hostname, port, path: `/v1/files/${key}`, headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`download answered ${res.statusCode}`));
      void drain(res).then(resolve, reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** utime + stime of a process, in seconds (from /proc: CPU the api spent, whatever else the machine runs). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const timed = async (fn: () => Promise<unknown>) => {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
};

runBenchmark(async (teardown) => {
  const size = positiveInt('BENCH_FILE_MIB', 100) * MIB;
  const rounds = positiveInt('BENCH_ROUNDS', 3);
  const prefix = `bf${newRunId()}`;
  const database = benchDatabase('files');
  teardown.add('database', () => database.drop());
  await database.create();
  const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-bench-files-'));
  teardown.add('files', () => rmSync(dir, { recursive: true, force: true }));
  teardown.add('redis keys', () => deleteRedisKeys(prefix));

  let storageEnv: Record<string, string> = { FILE_STORAGE_DIR: path.join(dir, 'api') };
  if (process.env.BENCH_S3) {
    const s3 = await PrivateS3.start('tenantry-bench');
    teardown.add('s3', () => s3.stop());
    storageEnv = s3.env('tenantry-bench');
  }
  const env = { DATABASE_URL: database.url, REDIS_PREFIX: prefix, ...storageEnv };
  const worker = await startWorker(env);
  teardown.add('worker', () => worker.close());
  const profileDir = process.env.BENCH_API_PROFILE_DIR;
  const api = await startApiProcess(env, profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir)}`] } : {});
  teardown.add('api', () => api.child.kill('SIGTERM'));

  const signup = validSignup();
  const accepted = await request(api.baseUrl, 'POST', '/v1/signup', { body: signup });
  const ready = await waitForSignup(api.baseUrl, accepted.body.signupId, 60_000);
  const token = (await request(api.baseUrl, 'POST', '/v1/auth/login', { body: { email: signup.email, password: signup.password } })).body.token as string;
  const raised = await request(api.baseUrl, 'PUT', `/v1/tenants/${ready.tenantId}/billing-state`, {
    token: (await import('../support/apps.js')).PLATFORM_KEY,
    body: { limits: { fileBytes: 4 * size, fileStorageBytes: 4 * size * (rounds + 1) } },
  });
  if (raised.status !== 200) throw new Error(`raising the limits answered ${raised.status}`);

  // The same driver the api uses, on the same disk (or bucket), beside it.
  const direct = createFileStorage({
    FILE_STORAGE_DRIVER: process.env.BENCH_S3 ? 's3' : 'local',
    FILE_STORAGE_DIR: path.join(dir, 'direct'),
    TENANTRY_DATA_DIR: dir,
    S3_BUCKET: storageEnv.S3_BUCKET,
    S3_ENDPOINT: storageEnv.S3_ENDPOINT,
    S3_REGION: 'us-east-1',
    S3_ACCESS_KEY_ID: storageEnv.S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY: storageEnv.S3_SECRET_ACCESS_KEY,
    S3_FORCE_PATH_STYLE: true,
    S3_PREFIX: 'direct/',
  });
  teardown.add('direct storage', () => direct.close());
  const tenant = randomUUID();

  const data = randomBytes(size);
  const seconds = { apiUp: [] as number[], directUp: [] as number[], apiDown: [] as number[], directDown: [] as number[] };
  /** The api's CPU seconds during its uploads and downloads. */
  const apiCpu = { up: [] as number[], down: [] as number[] };
  const pid = api.child.pid!;
  // Round -1 warms up both paths (JIT, TCP windows, the page cache) and is not counted: a
  // first transfer through a cold api ran at half the speed of the next in every trial run.
  for (let round = -1; round < rounds; round++) {
    const object = randomUUID();
    const apiFirst = round % 2 === 0;
    const counted = round >= 0;
    const runApiUp = async () => {
      let status = 0;
      const cpu = cpuSeconds(pid);
      const took = await timed(async () => (status = await upload(api.baseUrl, token, `bench-${round}`, data)));
      if (counted) seconds.apiUp.push(took), apiCpu.up.push(cpuSeconds(pid) - cpu);
      if (status !== 201) throw new Error(`upload answered ${status}`);
    };
    const runDirectUp = async () => {
      const took = await timed(() => direct.write(tenant, object, chunks(data), size, 'application/octet-stream'));
      if (counted) seconds.directUp.push(took);
    };
    for (const step of apiFirst ? [runApiUp, runDirectUp] : [runDirectUp, runApiUp]) await step();
    const runApiDown = async () => {
      const cpu = cpuSeconds(pid);
      const took = await timed(() => download(api.baseUrl, token, `bench-${round}`));
      if (counted) seconds.apiDown.push(took), apiCpu.down.push(cpuSeconds(pid) - cpu);
    };
    const runDirectDown = async () => {
      const took = await timed(async () => drain(await direct.read(tenant, object)));
      if (counted) seconds.directDown.push(took);
    };
    for (const step of apiFirst ? [runApiDown, runDirectDown] : [runDirectDown, runApiDown]) await step();
  }

  const mibps = (s: number[]) => size / MIB / median(s);
  const up = mibps(seconds.apiUp) / mibps(seconds.directUp);
  const down = mibps(seconds.apiDown) / mibps(seconds.directDown);
  console.log(`files: ${size / MIB} MiB, ${rounds} rounds, driver ${process.env.BENCH_S3 ? 's3 (s3rver)' : 'local'}; ${machineLine()}`);
  console.log(`upload    api ${mibps(seconds.apiUp).toFixed(0).padStart(6)} MiB/s   direct ${mibps(seconds.directUp).toFixed(0).padStart(6)} MiB/s   api/direct ${(up * 100).toFixed(0)} %   ${verdict(up >= TARGET)} (target ≥ 70 %)`);
  console.log(`download  api ${mibps(seconds.apiDown).toFixed(0).padStart(6)} MiB/s   direct ${mibps(seconds.directDown).toFixed(0).padStart(6)} MiB/s   api/direct ${(down * 100).toFixed(0)} %   ${verdict(down >= TARGET)} (target ≥ 70 %)`);
  const perMib = (cpu: number[]) => `${((median(cpu) * 1000) / (size / MIB)).toFixed(2)} ms`;
  console.log(`api CPU per MiB (median): upload ${perMib(apiCpu.up)}, download ${perMib(apiCpu.down)} — the api's own cost, which a busy machine does not inflate as it does wall time`);
});
