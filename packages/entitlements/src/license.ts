import { readFile } from 'node:fs/promises';
import { Capability, type Entitlements, Limits, PlanId, entitlementsOf } from '@tenantry/domain';
import {
  type CryptoKey,
  CompactSign,
  calculateJwkThumbprint,
  compactVerify,
  decodeProtectedHeader,
  errors,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importPKCS8,
  importSPKI,
} from 'jose';
import { z } from 'zod';
import { type EntitlementSource, type ResolvedEntitlements, freezeResolved } from './types.js';

/** The only algorithm a license may be signed with: Ed25519 (JWS "EdDSA"). */
export const LICENSE_ALG = 'EdDSA';
export const LICENSE_ISSUER = 'tenantry';

export type LicenseErrorCode =
  /** No license given: the variable is unset or empty, or the file does not exist or is empty. */
  | 'license_missing'
  /** Not a compact JWS at all (wrong number of parts, undecodable header or payload). */
  | 'license_malformed'
  /** Signed by a different key than the configured public key (the token's `kid` names another key). */
  | 'license_wrong_key'
  /** Signature does not verify (tampered header, payload or signature), a disallowed algorithm, or claims that are not a valid license. */
  | 'license_invalid'
  /** The configured public key is not an Ed25519 SPKI PEM: a configuration error, not a license one. */
  | 'license_public_key_invalid';

/** Why a license was refused. Never caught and turned into a grant: boot fails instead. */
export class LicenseError extends Error {
  override readonly name = 'LicenseError';
  constructor(
    readonly code: LicenseErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The claims of a license. `sub` is the customer; `exp` (seconds since the epoch) is required:
 * a license without an end is not issued. Overrides replace the plan's capabilities and
 * override some of its limits, as a billing state's do.
 */
export const LicenseClaims = z.object({
  iss: z.literal(LICENSE_ISSUER),
  sub: z.string().min(1).max(200),
  plan: PlanId,
  planVersion: z.number().int().positive().optional(),
  capabilities: z.array(Capability).max(20).optional(),
  limits: Limits.partial().optional(),
  exp: z.number().int().positive(),
  iat: z.number().int().optional(),
  nbf: z.number().int().optional(),
});
export type LicenseClaims = z.infer<typeof LicenseClaims>;

export type LicenseInput = { license: string | undefined } | { licenseFile: string };

export interface VerifiedLicense {
  claims: LicenseClaims;
  /** The key id (JWK thumbprint of the public key) the token names, if any. */
  kid: string | undefined;
}

/** Import an Ed25519 public key (PEM SPKI) and compute its JWK thumbprint (the `kid` licenses carry). */
export async function importLicensePublicKey(publicKeyPem: string): Promise<{ key: CryptoKey; kid: string }> {
  let key: CryptoKey;
  try {
    key = await importSPKI(publicKeyPem.trim(), LICENSE_ALG);
  } catch (err) {
    throw new LicenseError('license_public_key_invalid', `The license public key is not an Ed25519 PEM (SPKI) key: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { key, kid: await calculateJwkThumbprint(await exportJWK(key)) };
}

/** Read the license text from the environment value or the file; `license_missing` when there is none. */
export async function readLicense(input: LicenseInput): Promise<string> {
  let text: string | undefined;
  if ('licenseFile' in input) {
    try {
      text = await readFile(input.licenseFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new LicenseError('license_missing', `No license file at ${input.licenseFile}`, { cause: err });
      }
      throw new LicenseError('license_missing', `The license file ${input.licenseFile} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    text = text.trim();
    if (!text) throw new LicenseError('license_missing', `The license file ${input.licenseFile} is empty`);
  } else {
    text = input.license?.trim();
    if (!text) throw new LicenseError('license_missing', 'No license was given');
  }
  return text;
}

/**
 * Verify a license's signature and claims. Expiry is NOT an error here (an expired license
 * still names its plan; the installation goes read-only): callers compare `claims.exp`
 * with the clock. Every other problem throws a LicenseError.
 */
export async function verifyLicense(token: string, publicKey: { key: CryptoKey; kid: string }, now = Date.now()): Promise<VerifiedLicense> {
  // Structure first, so a garbled token is reported as such and not as a bad signature.
  if (token.split('.').length !== 3) throw new LicenseError('license_malformed', 'The license is not a signed token (expected three dot-separated parts)');
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token);
    kid = typeof header.kid === 'string' ? header.kid : undefined;
  } catch (err) {
    throw new LicenseError('license_malformed', `The license header cannot be decoded: ${(err as Error).message}`, { cause: err });
  }

  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, publicKey.key, { algorithms: [LICENSE_ALG] }));
  } catch (err) {
    if (err instanceof errors.JWSSignatureVerificationFailed) {
      // The kid is covered by the signature, so a forged kid only changes this message.
      if (kid !== undefined && kid !== publicKey.kid) {
        throw new LicenseError('license_wrong_key', `The license was signed by another key (kid ${kid}; this installation trusts ${publicKey.kid})`, {
          cause: err,
        });
      }
      throw new LicenseError('license_invalid', 'The license signature does not verify: it was altered or not issued for this key', { cause: err });
    }
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
      throw new LicenseError('license_invalid', `The license is not signed with ${LICENSE_ALG}: ${(err as Error).message}`, { cause: err });
    }
    if (err instanceof errors.JWSInvalid) {
      throw new LicenseError('license_malformed', `The license is not a valid signed token: ${(err as Error).message}`, { cause: err });
    }
    throw new LicenseError('license_invalid', `The license cannot be verified: ${(err as Error).message}`, { cause: err });
  }

  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (err) {
    throw new LicenseError('license_malformed', 'The license payload is not JSON', { cause: err });
  }
  const parsed = LicenseClaims.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(claims)'}: ${i.message}`).join('; ');
    throw new LicenseError('license_invalid', `The license claims are not valid: ${issues}`);
  }
  if (parsed.data.nbf !== undefined && parsed.data.nbf * 1000 > now) {
    throw new LicenseError('license_invalid', `The license is not valid before ${new Date(parsed.data.nbf * 1000).toISOString()}`);
  }
  return { claims: parsed.data, kid };
}

export interface TokenSourceOptions {
  /** The vendor's Ed25519 public key, PEM SPKI. */
  publicKey: string;
  /** The clock, in ms (tests). */
  now?: () => number;
}

/**
 * Entitlements of a self-hosted installation, from a license signed by the vendor. Every
 * tenant of the installation gets the license's plan. A license past its `exp` keeps its
 * plan with subscriptionState `expired` (read-only; the installation keeps reading). A
 * license that does not verify is an error, never a grant.
 *
 * Prefer `createTokenSource`, which verifies before returning (fail fast at boot). A
 * TokenSource made with `new` verifies in the background and every get() fails with the
 * LicenseError if verification failed.
 */
export class TokenSource implements EntitlementSource {
  private readonly now: () => number;
  private readonly verified: Promise<{ claims: LicenseClaims; active: ResolvedEntitlements; expired: ResolvedEntitlements }>;
  private state: { claims: LicenseClaims; active: ResolvedEntitlements; expired: ResolvedEntitlements } | undefined;

  constructor(input: LicenseInput, options: TokenSourceOptions) {
    const now = options.now ?? Date.now;
    this.now = now;
    this.verified = (async () => {
      const publicKey = await importLicensePublicKey(options.publicKey);
      const { claims } = await verifyLicense(await readLicense(input), publicKey, now());
      const base = { plan: claims.plan, planVersion: claims.planVersion ?? 1, capabilities: claims.capabilities, limits: claims.limits };
      const resolve = (e: Entitlements) => freezeResolved({ ...e, staleSeconds: 0, origin: 'license' });
      this.state = {
        claims,
        active: resolve(entitlementsOf({ ...base, subscriptionState: 'active' })),
        expired: resolve(entitlementsOf({ ...base, subscriptionState: 'expired' })),
      };
      return this.state;
    })();
    // Reported through ready() and get(); never an unhandled rejection.
    this.verified.catch(() => undefined);
  }

  /** Resolves once the license verified; rejects with its LicenseError otherwise. */
  async ready(): Promise<void> {
    await this.verified;
  }

  /** The verified claims (customer, plan, expiry) for logs and the admin view. */
  async claims(): Promise<LicenseClaims> {
    return (await this.verified).claims;
  }

  /** Expiry is checked on every call: a running installation goes read-only when its license ends. */
  async get(_tenantId: string): Promise<ResolvedEntitlements> {
    const state = this.state ?? (await this.verified);
    return state.claims.exp * 1000 <= this.now() ? state.expired : state.active;
  }

  async close(): Promise<void> {}
}

/** Read and verify the license, failing fast (LicenseError) if it is missing or does not verify. */
export async function createTokenSource(input: LicenseInput, options: TokenSourceOptions): Promise<TokenSource> {
  const source = new TokenSource(input, options);
  await source.ready();
  return source;
}

// --- issuing (operators' CLI and tests) ---------------------------------------------------

/** A new Ed25519 key pair, PEM encoded (PKCS #8 private, SPKI public). */
export async function generateLicenseKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const { privateKey, publicKey } = await generateKeyPair(LICENSE_ALG, { crv: 'Ed25519', extractable: true });
  return { privateKey: await exportPKCS8(privateKey), publicKey: await exportSPKI(publicKey) };
}

export interface IssueLicenseInput {
  /** Ed25519 private key, PEM PKCS #8. */
  privateKey: string;
  customer: string;
  plan: PlanId;
  /** When the license ends; or give `days` from now. */
  expiresAt?: Date;
  days?: number;
  capabilities?: Capability[];
  limits?: Partial<Limits>;
  planVersion?: number;
  now?: number;
}

/**
 * Sign a license. The claims are checked with the same schema the verifier uses, so a typo
 * in a capability name fails here and not at the customer's boot. The header's `kid` is the
 * JWK thumbprint of the matching public key, which lets the verifier tell "wrong key" apart.
 */
export async function issueLicense(input: IssueLicenseInput): Promise<string> {
  const now = input.now ?? Date.now();
  const expiresAt = input.expiresAt ?? (input.days !== undefined ? new Date(now + input.days * 86_400_000) : undefined);
  if (!expiresAt) throw new Error('give expiresAt or days');
  const claims = LicenseClaims.parse({
    iss: LICENSE_ISSUER,
    sub: input.customer,
    plan: input.plan,
    ...(input.planVersion !== undefined ? { planVersion: input.planVersion } : {}),
    ...(input.capabilities !== undefined ? { capabilities: input.capabilities } : {}),
    ...(input.limits !== undefined ? { limits: input.limits } : {}),
    iat: Math.floor(now / 1000),
    exp: Math.floor(expiresAt.getTime() / 1000),
  });
  const privateKey = await importPKCS8(input.privateKey.trim(), LICENSE_ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  // The public thumbprint: the members of an OKP key's thumbprint (crv, kty, x) are all public.
  const kid = await calculateJwkThumbprint({ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x! });
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: LICENSE_ALG, typ: 'JWT', kid }).sign(privateKey);
}
