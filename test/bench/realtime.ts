/**
 * Realtime fan-out: BENCH_SUBSCRIBERS Server-Sent Event streams of one tenant, split over
 * two api instances (child processes), and BENCH_EVENTS document writes made through the
 * first one, one every BENCH_INTERVAL_MS.
 *
 *   pnpm bench:realtime      (or: npx tsx test/bench/realtime.ts)
 *
 * Setup (not measured): a database of its own (`tenantry_bench_rt_<random>`, dropped at the
 * end), a Redis prefix of its own, a worker in-process to provision the tenant (plan pro,
 * realtimeConnections raised above the subscriber count).
 *
 * Measured: for every (event, subscriber) pair, the time from sending the write to the
 * event's arrival at that subscriber (the load generator, all subscribers and both apis
 * share this machine's cores), printed as p50/p95/max per instance; and the CPU time both
 * api processes spent during the event phase (from /proc), per event and per delivery.
 *
 * Env: BENCH_SUBSCRIBERS (1000), BENCH_EVENTS (200), BENCH_INTERVAL_MS (20), TEST_DATABASE_URL / TEST_REDIS_URL.
 */
import { readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { PLATFORM_KEY, startWorker } from '../support/apps.js';
import { request, validSignup, waitForSignup } from '../support/http.js';
import { startApiProcess } from '../support/process.js';
import { deleteRedisKeys } from '../support/redis.js';
import { benchDatabase, header, machineLine, newRunId, pool, positiveInt, row, runBenchmark, sleep, summarise, verdict } from './support.js';

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

runBenchmark(async (teardown) => {
  const subscribers = positiveInt('BENCH_SUBSCRIBERS', 1000);
  const events = positiveInt('BENCH_EVENTS', 200);
  const interval = positiveInt('BENCH_INTERVAL_MS', 20);
  const prefix = `br${newRunId()}`;
  const database = benchDatabase('rt');
  teardown.add('database', () => database.drop());
  await database.create();
  teardown.add('redis keys', () => deleteRedisKeys(prefix));
  const env = { DATABASE_URL: database.url, REDIS_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const worker = await startWorker(env);
  teardown.add('worker', () => worker.close());
  const apis = [await startApiProcess(env), await startApiProcess(env)];
  for (const api of apis) teardown.add('api', () => api.child.kill('SIGTERM'));

  const signup = validSignup();
  const accepted = await request(apis[0]!.baseUrl, 'POST', '/v1/signup', { body: signup });
  const ready = await waitForSignup(apis[0]!.baseUrl, accepted.body.signupId, 60_000);
  const token = (await request(apis[0]!.baseUrl, 'POST', '/v1/auth/login', { body: { email: signup.email, password: signup.password } })).body.token as string;
  const raised = await request(apis[0]!.baseUrl, 'PUT', `/v1/tenants/${ready.tenantId}/billing-state`, {
    token: PLATFORM_KEY,
    body: { plan: 'pro', subscriptionState: 'active', limits: { realtimeConnections: subscribers + 10, apiRequestsPerMinute: 100_000 } },
  });
  if (raised.status !== 200) throw new Error(`raising the limits answered ${raised.status}`);

  // Send time of each write (by its number, which the event carries); arrival times per instance.
  const sentAt = new Map<number, number>();
  const latencies: number[][] = [[], []];
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const opened = await pool(subscribers, 50, (i) => {
    const which = i % 2;
    const { hostname, port } = new URL(apis[which]!.baseUrl);
    return new Promise<() => void>((resolve, reject) => {
      const req = httpRequest({ hostname, port, path: '/v1/realtime?collections=bench', agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`subscriber ${i} answered ${res.statusCode}`));
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const now = performance.now();
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split('\n').find((l) => l.startsWith('data: '));
            if (!data) continue;
            const n = (JSON.parse(data.slice(6)) as { data?: { n?: number } }).data?.n;
            const sent = n === undefined ? undefined : sentAt.get(n);
            if (sent !== undefined) latencies[which]!.push(now - sent);
          }
        });
        resolve(() => req.destroy());
      });
      req.on('error', reject);
      req.end();
    });
  });
  teardown.add('subscribers', () => opened.forEach((close) => close()));
  await sleep(1_000);

  const pids = apis.map((a) => a.child.pid!);
  const cpuBefore = pids.map(cpuSeconds);
  const writer = new Agent({ keepAlive: true });
  for (let n = 0; n < events; n++) {
    const started = performance.now();
    sentAt.set(n, started);
    await new Promise<{ id: string }>((resolve, reject) => {
      const { hostname, port } = new URL(apis[0]!.baseUrl);
      const body = JSON.stringify({ data: { n } });
      const req = httpRequest({ hostname, port, path: '/v1/collections/bench/documents', method: 'POST', agent: writer, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => {
        let text = '';
        r.on('data', (c) => (text += c));
        r.on('end', () => (r.statusCode === 201 ? resolve(JSON.parse(text)) : reject(new Error(`write answered ${r.statusCode}: ${text}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
    await sleep(Math.max(0, interval - (performance.now() - started)));
  }
  await sleep(2_000);
  const cpu = pids.map((pid, i) => cpuSeconds(pid) - cpuBefore[i]!);
  const delivered = latencies[0]!.length + latencies[1]!.length;

  console.log(`realtime fan-out: ${subscribers} subscribers over 2 api instances, ${events} events every ${interval} ms; ${machineLine()}`);
  console.log(`deliveries: ${delivered} of ${subscribers * events} expected (${((delivered / (subscribers * events)) * 100).toFixed(1)} %)`);
  console.log(header('write sent → event received'));
  for (const [i, values] of latencies.entries()) console.log(row(`instance ${i === 0 ? 'A (writer)' : 'B'}`, summarise([...values].sort((a, b) => a - b))));
  const all = summarise([...latencies[0]!, ...latencies[1]!].sort((a, b) => a - b));
  console.log(row('all', all, `  ${verdict(all.p95 < 100)} (p95 < 100 ms)`));
  const total = cpu[0]! + cpu[1]!;
  console.log(`api CPU: ${(total * 1000).toFixed(0)} ms over the event phase (A ${(cpu[0]! * 1000).toFixed(0)} ms, B ${(cpu[1]! * 1000).toFixed(0)} ms): ${((total / events) * 1000).toFixed(2)} ms per event, ${((total / Math.max(1, delivered)) * 1e6).toFixed(1)} µs per delivery`);
});
