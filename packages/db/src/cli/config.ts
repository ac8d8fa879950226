import { describeEnvError, postgresUrl } from '@tenantry/domain';
import { z } from 'zod';

const Env = z.object({
  DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/tenantry'),
});

export function loadMigrateConfig(env: NodeJS.ProcessEnv = process.env): z.infer<typeof Env> {
  // An empty variable means "not set", as for the api and worker.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = Env.safeParse(present);
  if (!parsed.success) {
    console.error(`Invalid configuration:\n${describeEnvError(parsed.error)}`);
    process.exit(1);
  }
  return parsed.data;
}
