/**
 * What one tRPC middleware level costs per call: the reason the api's tenant ladder
 * (apps/api/src/trpc.ts) runs its steps as plain functions inside one middleware rather
 * than one middleware per step.
 *
 *   pnpm bench:trpc-middleware      (or: npx tsx test/bench/trpc-middleware.ts)
 *
 * A procedure shaped like the document read (a zod input of collection and id, a zod output
 * of the document) is built with each number of middleware levels in BENCH_LEVELS; every
 * other level passes context on with `next({ ctx })` as the ladder's steps did. Each is
 * called BENCH_CALLS times in a row through a caller made per call (createCallerFactory, as
 * the REST adapter does), in BENCH_ROUNDS rounds that rotate which goes first, after one
 * uncounted round. It prints the µs per call of each (median of the rounds), each against
 * one level in the same run, and the cost of one more level (a least-squares slope over the
 * level counts). The api's tenant calls went from 5 middleware levels (door: error mapping,
 * NUL check; ladder: metering, authentication, admission) to 2 on 2026-12-02, and to 1 on
 * 2026-12-03 (the door runs inside the ladder's middleware). The same day tRPC's object-spread
 * helper was patched (patches/@trpc__server@11.25.2.patch): a level went from 8 to 2.4 µs and
 * a one-level call from 26 to 9.8 µs. No database, no network: CPU only.
 * Exits 0; 1 only when something goes wrong.
 *
 * Env: BENCH_LEVELS (1,2,5), BENCH_CALLS (100000), BENCH_ROUNDS (4).
 */
import { initTRPC } from '@trpc/server';
import { z } from 'zod';
import { ascendingIntsKnob, machineLine, median, positiveInt, runBenchmark } from './support.js';

const LEVELS = ascendingIntsKnob('BENCH_LEVELS', [1, 2, 5]);
const CALLS = positiveInt('BENCH_CALLS', 100_000);
const ROUNDS = positiveInt('BENCH_ROUNDS', 4);

/** A context of the api's size: about fourteen keys (apps/api/src/context.ts). */
type Context = Record<string, unknown>;
const t = initTRPC.context<Context>().create();
const passOn = t.middleware(async ({ next }) => next());
const addContext = t.middleware(async ({ next }) => next({ ctx: { principal: { tenantId: 'a', kind: 'session' }, tenant: { id: 'a', status: 'active' } } }));

const input = z.object({ collection: z.string().min(1), id: z.string().min(1) });
const document = z.object({ id: z.string(), collection: z.string(), data: z.record(z.string(), z.unknown()), createdAt: z.string(), updatedAt: z.string() });

function routerWith(levels: number) {
  let builder = t.procedure;
  for (let level = 0; level < levels; level++) builder = builder.use(level % 2 === 0 ? passOn : addContext) as typeof builder;
  const read = builder
    .input(input)
    .output(document)
    .query(async ({ input }) => ({ id: input.id, collection: input.collection, data: { title: 'note', n: 1 }, createdAt: '2026-12-02T00:00:00Z', updatedAt: '2026-12-02T00:00:00Z' }));
  return t.router({ read });
}

/** µs per call of `calls` calls in a row. */
async function measure(callerOf: (ctx: Context) => { read: (input: { collection: string; id: string }) => Promise<unknown> }, ctx: Context, calls: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await callerOf(ctx).read({ collection: 'notes', id: 'd1' });
  return Number(process.hrtime.bigint() - started) / 1000 / calls;
}

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const mx = xs.reduce((a, x) => a + x, 0) / xs.length;
  const my = ys.reduce((a, y) => a + y, 0) / ys.length;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den === 0 ? Number.NaN : num / den;
}

runBenchmark(async () => {
  console.log(`tRPC middleware benchmark: ${CALLS} calls per procedure and round, ${ROUNDS} rounds, levels ${LEVELS.join(', ')}`);
  console.log(`  ${machineLine()}`);
  const ctx: Context = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`key${i}`, i]));
  const callers = LEVELS.map((levels) => t.createCallerFactory(routerWith(levels)));
  for (const callerOf of callers) await measure(callerOf, ctx, CALLS);

  const perCall = LEVELS.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < LEVELS.length; k++) {
      const i = (k + round) % LEVELS.length;
      perCall[i]!.push(await measure(callers[i]!, ctx, CALLS));
    }
  }
  const medians = perCall.map((values) => median(values));
  const base = medians[0]!;
  console.log(`\n  levels   µs per call (median of ${ROUNDS})   ÷ ${LEVELS[0]} level${LEVELS[0] === 1 ? '' : 's'}   rounds`);
  LEVELS.forEach((levels, i) => {
    console.log(
      `  ${String(levels).padStart(6)}   ${medians[i]!.toFixed(2).padStart(26)}   ${`${(medians[i]! / base).toFixed(2)}×`.padStart(9)}   ${perCall[i]!.map((v) => v.toFixed(1)).join(', ')}`,
    );
  });
  const perLevel = slope(LEVELS, medians);
  console.log(`\n  one more middleware level: ${perLevel.toFixed(2)} µs per call (slope over ${LEVELS.join(', ')} levels)`);
  console.log(`  a tenant call, 5 middleware levels → 1: about ${(4 * perLevel).toFixed(1)} µs less per call`);
});
