import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLAN_CATALOG } from '@tenantry/domain';
import { SignJWT, base64url, importPKCS8 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LicenseError, TokenSource, createTokenSource, generateLicenseKeyPair, issueLicense } from './license.js';

let keys: { privateKey: string; publicKey: string };
let otherKeys: { privateKey: string; publicKey: string };
let dir: string;

beforeAll(async () => {
  keys = await generateLicenseKeyPair();
  otherKeys = await generateLicenseKeyPair();
  dir = await mkdtemp(join(tmpdir(), 'tenantry-license-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DAY = 86_400_000;

async function expectLicenseError(promise: Promise<unknown>, code: LicenseError['code']): Promise<LicenseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a LicenseError ${code}`).toBeInstanceOf(LicenseError);
  expect((err as LicenseError).code).toBe(code);
  return err as LicenseError;
}

/** Replace the payload of a compact JWS, keeping its header and signature. */
function withPayload(token: string, change: (claims: Record<string, unknown>) => void): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
  change(claims);
  return `${header}.${base64url.encode(JSON.stringify(claims))}.${signature}`;
}

describe('TokenSource', () => {
  it('grants the plan of a valid license, with its overrides, to every tenant', async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme', plan: 'pro', days: 365, limits: { members: 500 } });
    const source = await createTokenSource({ license }, { publicKey: keys.publicKey });
    const e = await source.get('any-tenant');
    expect(e).toMatchObject({ plan: 'pro', planVersion: 1, subscriptionState: 'active', origin: 'license', staleSeconds: 0, metersEnabled: true });
    expect(e.capabilities).toEqual(PLAN_CATALOG.pro.capabilities);
    expect(e.limits).toEqual({ ...PLAN_CATALOG.pro.limits, members: 500 });
    expect(await source.get('another-tenant')).toEqual(e);
    expect((await source.claims()).sub).toBe('acme');
    await source.close();
  });

  it('reads the license from a file, and honours capability overrides and planVersion', async () => {
    const license = await issueLicense({
      privateKey: keys.privateKey,
      customer: 'globex',
      plan: 'enterprise',
      days: 30,
      capabilities: ['files', 'realtime'],
      planVersion: 3,
    });
    const file = join(dir, 'license.jwt');
    await writeFile(file, `${license}\n`);
    const source = await createTokenSource({ licenseFile: file }, { publicKey: keys.publicKey });
    expect(await source.get('t')).toMatchObject({ plan: 'enterprise', planVersion: 3, capabilities: ['files', 'realtime'], subscriptionState: 'active' });
  });

  it('keeps the plan of an expired license, read-only (subscriptionState expired), without throwing', async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme', plan: 'enterprise', expiresAt: new Date(Date.now() - DAY) });
    const source = await createTokenSource({ license }, { publicKey: keys.publicKey });
    const e = await source.get('t');
    expect(e).toMatchObject({ plan: 'enterprise', subscriptionState: 'expired', origin: 'license' });
    expect(e.capabilities).toEqual(PLAN_CATALOG.enterprise.capabilities);
  });

  it('re-checks expiry on every get(): a running installation expires when its license ends', async () => {
    let now = Date.now();
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme', plan: 'pro', days: 1, now });
    const source = await createTokenSource({ license }, { publicKey: keys.publicKey, now: () => now });
    expect((await source.get('t')).subscriptionState).toBe('active');
    now += DAY + 1_000;
    expect((await source.get('t')).subscriptionState).toBe('expired');
  });

  it('refuses a tampered payload whose signature was kept (license_invalid)', async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme', plan: 'free', days: 365 });
    const tampered = withPayload(license, (claims) => {
      claims.plan = 'enterprise';
    });
    const err = await expectLicenseError(createTokenSource({ license: tampered }, { publicKey: keys.publicKey }), 'license_invalid');
    expect(err.message).toMatch(/signature/);
    // An extended expiry is tampering too.
    const extended = withPayload(license, (claims) => {
      claims.exp = (claims.exp as number) + 10 * 365 * 86_400;
    });
    await expectLicenseError(createTokenSource({ license: extended }, { publicKey: keys.publicKey }), 'license_invalid');
  });

  it('refuses a tampered signature (license_invalid)', async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme', plan: 'pro', days: 365 });
    const [h, p, s] = license.split('.') as [string, string, string];
    const sig = base64url.decode(s);
    sig[0]! ^= 1;
    await expectLicenseError(createTokenSource({ license: `${h}.${p}.${base64url.encode(sig)}` }, { publicKey: keys.publicKey }), 'license_invalid');
  });

  it('tells a license signed by another key apart (license_wrong_key)', async () => {
    const license = await issueLicense({ privateKey: otherKeys.privateKey, customer: 'acme', plan: 'enterprise', days: 365 });
    const err = await expectLicenseError(createTokenSource({ license }, { publicKey: keys.publicKey }), 'license_wrong_key');
    expect(err.message).toMatch(/another key/);
    // Without a kid it cannot be told apart from tampering, and is still refused.
    const noKid = await new SignJWT({ plan: 'enterprise' })
      .setProtectedHeader({ alg: 'EdDSA' })
      .setIssuer('tenantry')
      .setSubject('acme')
      .setExpirationTime('1y')
      .sign(await importKey(otherKeys.privateKey));
    await expectLicenseError(createTokenSource({ license: noKid }, { publicKey: keys.publicKey }), 'license_invalid');
  });

  it('fails fast when there is no license (license_missing)', async () => {
    await expectLicenseError(createTokenSource({ license: undefined }, { publicKey: keys.publicKey }), 'license_missing');
    await expectLicenseError(createTokenSource({ license: '  \n' }, { publicKey: keys.publicKey }), 'license_missing');
    await expectLicenseError(createTokenSource({ licenseFile: join(dir, 'no-such-file.jwt') }, { publicKey: keys.publicKey }), 'license_missing');
    const empty = join(dir, 'empty.jwt');
    await writeFile(empty, '\n');
    await expectLicenseError(createTokenSource({ licenseFile: empty }, { publicKey: keys.publicKey }), 'license_missing');
  });

  it('refuses a malformed license (license_malformed)', async () => {
    for (const license of ['not-a-token', 'a.b', 'a.b.c.d', '!!!.???.###', `${base64url.encode('{"alg":')}.${base64url.encode('{}')}.AAAA`]) {
      await expectLicenseError(createTokenSource({ license }, { publicKey: keys.publicKey }), 'license_malformed');
    }
  });

  it('refuses other algorithms and unsigned tokens (license_invalid)', async () => {
    const claims = { iss: 'tenantry', sub: 'acme', plan: 'enterprise', exp: Math.floor(Date.now() / 1000) + 3600 };
    const none = `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify(claims))}.`;
    await expectLicenseError(createTokenSource({ license: none }, { publicKey: keys.publicKey }), 'license_invalid');
    // The classic confusion: HMAC keyed with the (public) PEM text.
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(keys.publicKey));
    await expectLicenseError(createTokenSource({ license: hs }, { publicKey: keys.publicKey }), 'license_invalid');
  });

  it('refuses a correctly signed token whose claims are not a license (license_invalid)', async () => {
    const key = await importKey(keys.privateKey);
    const wrongIssuer = await new SignJWT({ plan: 'pro' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer('someone').setSubject('acme').setExpirationTime('1y').sign(key);
    await expectLicenseError(createTokenSource({ license: wrongIssuer }, { publicKey: keys.publicKey }), 'license_invalid');
    const noExpiry = await new SignJWT({ plan: 'pro' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer('tenantry').setSubject('acme').sign(key);
    await expectLicenseError(createTokenSource({ license: noExpiry }, { publicKey: keys.publicKey }), 'license_invalid');
    const unknownPlan = await new SignJWT({ plan: 'platinum' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer('tenantry').setSubject('acme').setExpirationTime('1y').sign(key);
    await expectLicenseError(createTokenSource({ license: unknownPlan }, { publicKey: keys.publicKey }), 'license_invalid');
  });

  it('reports a bad public key as configuration, not as a license problem', async () => {
    const license = await issueLicense({ privateKey: keys.privateKey, customer: 'acme', plan: 'pro', days: 1 });
    await expectLicenseError(createTokenSource({ license }, { publicKey: 'not a pem' }), 'license_public_key_invalid');
  });

  it('never grants from a license that failed: get() rejects on a source made with new', async () => {
    const source = new TokenSource({ license: 'garbage' }, { publicKey: keys.publicKey });
    await expectLicenseError(source.get('t'), 'license_malformed');
    await expectLicenseError(source.get('t'), 'license_malformed');
  });
});

const importKey = (pem: string) => importPKCS8(pem, 'EdDSA');
