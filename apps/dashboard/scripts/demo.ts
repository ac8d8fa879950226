/**
 * `pnpm demo`: fill a running installation with sample tenants, so a first look at the
 * dashboard has something in it. Everything goes through the public API with a platform
 * key, as an operator's tooling would: tenants across plans, on every isolation model this
 * installation can provision, some suspended or pending deletion, a few quota overrides,
 * and some document traffic as each new tenant's owner.
 *
 *   TENANTRY_PLATFORM_KEY=tpk_… npx -y pnpm@10.34.8 demo [--tenants 36] [--url http://127.0.0.1:3000]
 *
 * Idempotent: tenants are keyed by their owner's email (…@demo.tenantry.example), so a
 * second run adds nothing and changes nothing it already did.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createAdminClient, createPublicClient, createTenantClient, isTenantryError } from '@tenantry/sdk';

const NAMES = [
  'Acme Rockets', 'Globex Labs', 'Initech Systems', 'Umbrella Health', 'Hooli Cloud', 'Stark Media', 'Wayne Foods', 'Tyrell Robotics',
  'Cyberdyne Analytics', 'Soylent Kitchens', 'Wonka Confections', 'Vandelay Imports', 'Pied Piper', 'Aperture Science', 'Black Mesa',
  'Gringotts Ledger', 'Oscorp Energy', 'Massive Dynamic', 'Nakatomi Trading', 'Dunder Mifflin', 'Prestige Worldwide', 'Bluth Homes',
  'Monarch Logistics', 'Wernham Hogg', 'Sterling Cooper', 'Los Pollos', 'Krusty Burger', 'Duff Brewing', 'Spacely Sprockets',
  'Cogswell Cogs', 'Planet Express', 'Mom Robotics', 'Virtucon', 'Gekko Partners', 'Ollivanders', 'Stay Puft',
];
const PLANS = ['trial', 'free', 'pro', 'enterprise'] as const;

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: String(NAMES.length) },
    url: { type: 'string' },
  },
});
// The demo is a client of the api, not an app: its two settings come from flags or the
// same variables the API reference's examples use.
const baseUrl = (values.url ?? process.env.TENANTRY_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const platformKey = process.env.TENANTRY_PLATFORM_KEY;
const count = Number(values.tenants);
if (!platformKey) {
  console.error('Set TENANTRY_PLATFORM_KEY to a platform key (the api prints one on its first start; or `pnpm platform-key create demo`).');
  process.exit(2);
}
if (!Number.isInteger(count) || count < 1 || count > NAMES.length) {
  console.error(`--tenants must be 1–${NAMES.length}`);
  process.exit(2);
}

const admin = createAdminClient({ baseUrl, platformKey });
const anon = createPublicClient({ baseUrl });
const password = `demo-${randomBytes(12).toString('base64url')}`;

type Isolation = 'schema' | 'database' | 'cluster';
interface Planned {
  name: string;
  plan: (typeof PLANS)[number];
  isolation: Isolation;
  email: string;
}

function plan(): Planned[] {
  return NAMES.slice(0, count).map((name, i) => {
    const plan = PLANS[i % PLANS.length]!;
    // One tenant of each stronger model, where the plan includes it (tried, and skipped if
    // this installation cannot provision it).
    const isolation: Isolation = i === 2 ? 'database' : i === 3 ? 'cluster' : 'schema';
    return { name, plan, isolation, email: `owner@${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}.demo.tenantry.example` };
  });
}

interface Created {
  tenantId: string;
  planned: Planned;
  /** Made by this run (an earlier run's tenant answers with its current status instead). */
  fresh: boolean;
}

async function create(t: Planned): Promise<Created> {
  try {
    const made = await admin.tenants.create.mutate({ name: t.name, ownerEmail: t.email, ownerPassword: password, plan: t.plan, isolation: t.isolation });
    return { tenantId: made.tenantId, planned: t, fresh: made.status === 'provisioning' };
  } catch (error) {
    if (t.isolation !== 'schema' && isTenantryError(error) && (error.code === 'validation_failed' || error.code === 'capability_missing')) {
      console.log(`  ${t.name}: ${t.isolation} isolation is not available here (${error.message}); using schema`);
      return create({ ...t, isolation: 'schema' });
    }
    throw error;
  }
}

async function waitActive(tenantId: string, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A provisioning that failed for good is compensated: the tenant row is gone.
    const tenant = await admin.tenants.get.query({ id: tenantId }).catch((error: unknown) => {
      if (isTenantryError(error) && error.status === 404) return { status: 'failed' };
      throw error;
    });
    if (tenant.status !== 'provisioning' || Date.now() > deadline) return tenant.status;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Some writes and reads as the owner, so the tenant has data and request traffic. */
async function traffic(t: Planned, i: number): Promise<number> {
  const login = await anon.auth.login.mutate({ email: t.email, password }).catch(() => null);
  if (!login) return 0; // made by an earlier run, with that run's password
  const client = createTenantClient({ baseUrl, token: login.token });
  let made = 0;
  for (let n = 0; n < 3 + (i % 5); n++) {
    await client.documents.create.mutate({ collection: 'notes', data: { title: `Note ${n + 1}`, status: n % 2 ? 'done' : 'open' } });
    await client.documents.create.mutate({ collection: 'orders', data: { number: 1000 + n, totalMinor: 1999 * (n + 1), currency: 'EUR' } });
    made += 2;
  }
  await client.documents.list.query({ collection: 'notes', limit: 20 });
  return made;
}

/** Hosted-only routes answer 404 elsewhere: say so once and go on. */
async function hosted<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (error) {
    if (isTenantryError(error) && error.status === 404 && error.code === 'not_found') {
      console.log(`  (${what} skipped: the api is not in hosted mode)`);
      return undefined;
    }
    throw error;
  }
}

async function main() {
  console.log(`Seeding ${count} demo tenants into ${baseUrl} …`);
  const created: Created[] = [];
  for (const t of plan()) created.push(await create(t));
  const statuses = await Promise.all(created.map((c) => waitActive(c.tenantId)));
  console.log(`  ${statuses.filter((s) => s !== 'failed' && s !== 'provisioning').length} of ${created.length} tenants are ready (${created.filter((c) => c.fresh).length} new)`);
  // Only what this run made gets traffic and a state: a second run changes nothing.
  const fresh = [...created.entries()].filter(([i, c]) => c.fresh && statuses[i] === 'active');

  let documents = 0;
  for (const [i, c] of fresh) documents += await traffic(c.planned, i);
  console.log(`  ${documents} documents written`);

  // A spread of states: every 7th suspended, every 9th scheduled for deletion, quota overrides on a few.
  for (const [i, c] of fresh) {
    if (i % 7 === 5) await hosted('suspend', () => admin.tenants.suspend.mutate({ id: c.tenantId, reason: 'demo: unpaid invoice' }));
    else if (i % 9 === 7) await hosted('delete', () => admin.tenants.delete.mutate({ id: c.tenantId, reason: 'demo: customer left' }));
    else if (i % 6 === 1) await hosted('quota override', () => admin.billing.update.mutate({ id: c.tenantId, limits: { members: 25 + i, apiRequestsPerMinute: 1_200 } }));
  }
  const list = await admin.tenants.list.query({ limit: 100 });
  const byStatus = list.items.reduce<Record<string, number>>((acc, t) => ({ ...acc, [t.status]: (acc[t.status] ?? 0) + 1 }), {});
  console.log(`Done. Tenants by status (first 100): ${JSON.stringify(byStatus)}`);
  console.log(`Open ${baseUrl}/dashboard/ and sign in with the platform key.`);
  if (documents > 0) console.log(`New demo owners can log in as owner@<slug>.demo.tenantry.example with password ${password}`);
}

main().catch((error: unknown) => {
  console.error(isTenantryError(error) ? `demo failed: ${error.code}: ${error.message}` : error);
  process.exit(1);
});
