import { pageLimit } from '@tenantry/domain';
import { z } from 'zod';
import { listAudit } from '../services/audit.js';
import { platformProcedure, router } from '../trpc.js';

const AuditEntry = z.object({
  id: z.string(),
  seq: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  tenantId: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  hash: z.string(),
});

export const auditRouter = router({
  list: platformProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/audit',
        summary: 'List audit entries',
        description: 'Lists the tamper-evident audit log, newest first, optionally for one tenant, with keyset pagination (`cursor` from `nextCursor`). Each entry carries its chain hash; `pnpm audit:verify` checks the chain.',
        auth: 'platform',
      },
    })
    .input(
      z.strictObject({
        tenantId: z.string().max(64).optional(),
        limit: pageLimit(200, 50),
        cursor: z.string().max(32).optional(),
      }),
    )
    .output(z.object({ items: z.array(AuditEntry), nextCursor: z.string().nullable() }))
    .query(({ ctx, input }) => listAudit(ctx.deps.db, input)),
});
