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
    .meta({ rest: { method: 'GET', path: '/audit', auth: 'platform' } })
    .input(
      z.strictObject({
        tenantId: z.string().max(64).optional(),
        limit: z
          .union([z.number(), z.string().regex(/^\d{1,3}$/, 'must be a whole number')])
          .transform(Number)
          .pipe(z.number().int().min(1).max(200))
          .default(50),
        cursor: z.string().max(32).optional(),
      }),
    )
    .output(z.object({ items: z.array(AuditEntry), nextCursor: z.string().nullable() }))
    .query(({ ctx, input }) => listAudit(ctx.deps.db, input)),
});
