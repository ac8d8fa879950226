import { z } from 'zod';
import { Isolation, MemberRole, TenantStatus } from './tenant.js';

export const LoginRequest = z.strictObject({
  email: z.string().trim().min(1, 'is required').max(254, 'must be at most 254 characters'),
  password: z.string().min(1, 'is required').max(1024, 'is too long'),
});

export const LoginResponse = z.object({
  token: z.string(),
  expiresAt: z.string(),
  tenantId: z.string(),
});

export const MeResponse = z.object({
  user: z.object({ id: z.string(), email: z.string(), role: MemberRole }),
  tenant: z.object({
    id: z.string(),
    slug: z.string(),
    name: z.string(),
    status: TenantStatus,
    plan: z.string(),
    isolation: Isolation,
  }),
});
