import { postgresUrl } from '@tenantry/domain';
import { z } from 'zod';

const Env = z.object({
  DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/tenantry'),
});

export function loadMigrateConfig(env: NodeJS.ProcessEnv = process.env): z.infer<typeof Env> {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    console.error(`Invalid configuration:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
    process.exit(1);
  }
  return parsed.data;
}
