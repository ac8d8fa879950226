import { z } from 'zod';
import { publicIdSchema } from './ids.js';
import { Isolation } from './tenant.js';

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 128;

/**
 * Letters (any script) with their combining marks, digits, space, hyphen and underscore:
 * nothing path- or markup-like. Marks (and the zero-width joiners Indic scripts use) only
 * after a base character, so "नमस्ते", "สวัสดี" and decomposed "Café" pass, a lone mark does not.
 */
const ORG_NAME = /^(?:[\p{L}\p{N} _-][\p{M}\u200C\u200D]*)+$/u;

export const Email = z
  .string()
  .trim()
  .max(254, 'must be at most 254 characters')
  .pipe(z.email({ message: 'must be an email address' }));

/**
 * NIST SP 800-63B: length is what matters. No composition rules; a common-password check
 * is added by the api (the list is a file, and this package does no I/O).
 */
export const Password = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_LENGTH, `must be at most ${MAX_PASSWORD_LENGTH} characters`);

/** Stored in NFC, so "Café" typed decomposed or precomposed is one name. */
export const OrgName = z
  .string()
  .trim()
  .normalize('NFC')
  .min(3, 'must be at least 3 characters')
  .max(64, 'must be at most 64 characters')
  .regex(ORG_NAME, 'may contain only letters, digits, spaces, "-" and "_"');

export const SignupRequest = z.strictObject({
  email: Email,
  password: Password,
  orgName: OrgName,
  isolation: Isolation.optional(),
});
export type SignupRequest = z.infer<typeof SignupRequest>;

export const SignupStatus = z.enum(['pending', 'provisioning', 'ready', 'failed']);
export type SignupStatus = z.infer<typeof SignupStatus>;

export const SignupAccepted = z.object({
  signupId: z.string(),
  status: SignupStatus,
});

export const SignupStatusRequest = z.object({ signupId: publicIdSchema('sgn') });

export const SignupStatusResponse = z.object({
  signupId: z.string(),
  status: SignupStatus,
  tenantId: z.string().optional(),
});
