import { randomUUID } from 'node:crypto';
import { type Db, appendAudit, insertProvisioningTenant } from '@tenantry/db';
import type { Isolation, SignupStatus } from '@tenantry/domain';
import { enqueueProvisioning, provisioningRetryPolicy } from '@tenantry/jobs';
import { sql } from 'kysely';
import type { ApiDeps } from '../context.js';
import { withTimeout } from '../timeout.js';

/** How long a request waits on Redis to enqueue before leaving it to the reconciler. */
const ENQUEUE_TIMEOUT_MS = 1_000;

export interface TenantIntentInput {
  /** Normalised. */
  email: string;
  orgName: string;
  isolation: Isolation;
  plan: string;
  /** Null only when an operator creates a tenant without an owner password. */
  passwordHash: string | null;
  source: 'signup' | 'platform';
  /** Who asked, for the audit log: `public:signup` or `platform:<key id>`. */
  actor: string;
}

export interface TenantIntent {
  signupId: string;
  tenantId: string;
  status: SignupStatus;
  generation: number;
  /** This call recorded it (a new email, or a retry of a failed one): its tenant row was just made, `provisioning`. */
  created: boolean;
}

/**
 * Record the wish for a tenant — from public signup or from an operator — and its tenant
 * row (status `provisioning`, so operators see it at once), in one transaction. One owner
 * email, one tenant: a known email changes nothing, unless its earlier attempt failed, in
 * which case the new one replaces it with a fresh tenant id and the next generation (so
 * it gets a fresh job id). The unique index on the normalised email decides races.
 */
export async function recordTenantIntent(db: Db, input: TenantIntentInput): Promise<TenantIntent> {
  return db.transaction().execute(async (trx) => {
    const written = await trx
      .insertInto('signups')
      .values({
        email: input.email,
        org_name: input.orgName,
        isolation: input.isolation,
        plan: input.plan,
        source: input.source,
        password_hash: input.passwordHash,
        status: 'pending',
        tenant_id: randomUUID(),
      })
      .onConflict((oc) =>
        oc
          .column('email')
          .doUpdateSet({
            org_name: (eb) => eb.ref('excluded.org_name'),
            isolation: (eb) => eb.ref('excluded.isolation'),
            plan: (eb) => eb.ref('excluded.plan'),
            source: (eb) => eb.ref('excluded.source'),
            password_hash: (eb) => eb.ref('excluded.password_hash'),
            tenant_id: (eb) => eb.ref('excluded.tenant_id'),
            status: 'pending',
            generation: sql`signups.generation + 1`,
            last_error: null,
            updated_at: sql`now()`,
          })
          .where('signups.status', '=', 'failed'),
      )
      .returning(['id', 'tenant_id', 'status', 'generation'])
      .executeTakeFirst();
    if (written) {
      await insertProvisioningTenant(trx, { id: written.tenant_id, name: input.orgName, plan: input.plan, isolation: input.isolation });
      await appendAudit(trx, {
        actor: input.actor,
        action: 'tenant.requested',
        tenantId: written.tenant_id,
        data: { signupId: written.id, source: input.source, plan: input.plan, isolation: input.isolation, generation: written.generation },
      });
    }
    const row =
      written ??
      (await trx.selectFrom('signups').select(['id', 'tenant_id', 'status', 'generation']).where('email', '=', input.email).executeTakeFirstOrThrow());
    return { signupId: row.id, tenantId: row.tenant_id, status: row.status, generation: row.generation, created: written !== undefined };
  });
}

/**
 * Enqueue the saga for an unfinished intent. Idempotent by job id. If Redis is away the
 * intent is safe in Postgres and the worker's reconciler enqueues it later, so callers
 * still answer 202.
 */
export async function enqueueIntent(deps: ApiDeps, intent: TenantIntent, email: string): Promise<void> {
  if (intent.status !== 'pending' && intent.status !== 'provisioning') return;
  try {
    await withTimeout(
      enqueueProvisioning(
        deps.provisioningQueue,
        { signupId: intent.signupId, generation: intent.generation, normalisedEmail: email },
        provisioningRetryPolicy(deps.config.PROVISION_ATTEMPTS, deps.config.PROVISION_BACKOFF_MS),
      ),
      ENQUEUE_TIMEOUT_MS,
    );
  } catch (err) {
    deps.logger.warn({ err, signupId: intent.signupId }, 'enqueue failed; the reconciler will pick the intent up');
  }
}
