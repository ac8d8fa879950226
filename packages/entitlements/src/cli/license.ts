/**
 * Licenses for self-hosted installations, for operators:
 *
 *   pnpm license keygen --private private.pem --public public.pem [--force]
 *   pnpm license issue --key private.pem --customer acme --plan enterprise --days 365 \
 *       [--capabilities files,realtime] [--limits members=500,storageBytes=1073741824] [--plan-version 2]
 *   pnpm license inspect <jwt> --public public.pem      (or --file license.jwt)
 *
 * `issue` prints the token on stdout; `inspect` prints the verified claims as JSON, or the
 * error's code and message (exit code 1).
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Capability, Limits, PlanId } from '@tenantry/domain';
import { LicenseError, generateLicenseKeyPair, importLicensePublicKey, issueLicense, readLicense, verifyLicense } from '../license.js';

const USAGE = `usage:
  license keygen --private <private.pem> --public <public.pem> [--force]
  license issue --key <private.pem> --customer <name> --plan <${PlanId.options.join('|')}> --days <n>
                [--capabilities <${Capability.options.join(',')}>] [--limits key=n,...] [--plan-version <n>]
  license inspect <jwt> --public <public.pem>
  license inspect --file <license.jwt> --public <public.pem>`;

class UsageError extends Error {}

function required(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

async function keygen(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { private: { type: 'string' }, public: { type: 'string' }, force: { type: 'boolean' } } });
  const privatePath = required(values, 'private');
  const publicPath = required(values, 'public');
  const { privateKey, publicKey } = await generateLicenseKeyPair();
  const flag = values.force ? 'w' : 'wx';
  try {
    await writeFile(privatePath, privateKey, { mode: 0o600, flag });
    // An overwritten file keeps its old mode: set it.
    await chmod(privatePath, 0o600);
    await writeFile(publicPath, publicKey, { mode: 0o644, flag });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${(err as NodeJS.ErrnoException).path} exists (use --force to overwrite)`);
    throw err;
  }
  console.error(`wrote ${privatePath} (private, mode 0600: keep it secret) and ${publicPath} (public: ship it with the product)`);
}

function parseLimits(text: string): Partial<Limits> {
  const out: Record<string, number> = {};
  for (const pair of text.split(',').filter(Boolean)) {
    const [key, value] = pair.split('=');
    if (!key || value === undefined || !/^\d+$/.test(value)) throw new UsageError(`--limits: expected key=integer, got "${pair}"`);
    out[key.trim()] = Number(value);
  }
  const parsed = Limits.partial().safeParse(out);
  if (!parsed.success) throw new UsageError(`--limits: ${parsed.error.issues.map((i) => i.message).join('; ')} (keys: ${Object.keys(Limits.shape).join(', ')})`);
  return parsed.data;
}

async function issue(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      key: { type: 'string' },
      customer: { type: 'string' },
      plan: { type: 'string' },
      days: { type: 'string' },
      capabilities: { type: 'string' },
      limits: { type: 'string' },
      'plan-version': { type: 'string' },
    },
  });
  const plan = PlanId.safeParse(required(values, 'plan'));
  if (!plan.success) throw new UsageError(`--plan must be one of ${PlanId.options.join(', ')}`);
  const days = Number(required(values, 'days'));
  if (!Number.isFinite(days) || days <= 0) throw new UsageError('--days must be a positive number');
  let capabilities: Capability[] | undefined;
  if (values.capabilities !== undefined) {
    const names = values.capabilities.split(',').map((c) => c.trim()).filter(Boolean);
    const unknown = names.filter((c) => !Capability.safeParse(c).success);
    if (unknown.length) throw new UsageError(`unknown capabilities: ${unknown.join(', ')} (known: ${Capability.options.join(', ')})`);
    capabilities = names as Capability[];
  }
  const planVersion = values['plan-version'] !== undefined ? Number(values['plan-version']) : undefined;
  if (planVersion !== undefined && !(Number.isInteger(planVersion) && planVersion > 0)) throw new UsageError('--plan-version must be a positive integer');
  const token = await issueLicense({
    privateKey: await readFile(required(values, 'key'), 'utf8'),
    customer: required(values, 'customer'),
    plan: plan.data,
    days,
    ...(capabilities ? { capabilities } : {}),
    ...(values.limits !== undefined ? { limits: parseLimits(values.limits) } : {}),
    ...(planVersion !== undefined ? { planVersion } : {}),
  });
  console.log(token);
}

async function inspect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { public: { type: 'string' }, file: { type: 'string' } } });
  const publicPem = await readFile(required(values, 'public'), 'utf8');
  try {
    const token = await readLicense(values.file !== undefined ? { licenseFile: values.file } : { license: positionals[0] });
    const { claims, kid } = await verifyLicense(token, await importLicensePublicKey(publicPem));
    const expired = claims.exp * 1000 <= Date.now();
    console.log(
      JSON.stringify(
        { valid: true, status: expired ? 'expired' : 'active', expiresAt: new Date(claims.exp * 1000).toISOString(), kid: kid ?? null, claims },
        null,
        2,
      ),
    );
    return 0;
  } catch (err) {
    if (err instanceof LicenseError) {
      console.log(JSON.stringify({ valid: false, code: err.code, message: err.message }, null, 2));
      return 1;
    }
    throw err;
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'keygen':
      await keygen(rest);
      return 0;
    case 'issue':
      await issue(rest);
      return 0;
    case 'inspect':
      return inspect(rest);
    default:
      throw new UsageError(command ? `unknown command "${command}"` : 'give a command');
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = 1;
    }
  },
);
