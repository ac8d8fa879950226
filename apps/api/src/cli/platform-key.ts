/**
 * Manage stored platform API keys (rotation without a restart):
 *
 *   pnpm platform-key create <name>   make a key, print it once, store its hash
 *   pnpm platform-key list            id, name, created, revoked
 *   pnpm platform-key revoke <id>     refuse that key from now on
 *
 * Keys given in PLATFORM_API_KEY are not stored and not listed here.
 */
import { appendAudit, createDb, migrateToLatest } from '@tenantry/db';
import { sql } from 'kysely';
import { loadApiConfigOrExit } from '../config.js';
import { newPlatformKey } from '../services/platform-keys.js';

const USAGE = 'usage: platform-key create <name> | list | revoke <id>';

/** A mistake in how the command was called: message and exit 2, no stack. */
class UsageError extends Error {}

const config = loadApiConfigOrExit();

const [command, argument] = process.argv.slice(2);
const db = createDb(config.DATABASE_URL, { maxConnections: 1, applicationName: 'tenantry-platform-key' });
try {
  await migrateToLatest(db);
  switch (command) {
    case 'create': {
      const name = argument?.trim();
      if (!name || name.length > 100) throw new UsageError('create needs a name (1–100 characters)');
      const { key, keyHash } = newPlatformKey();
      await db.transaction().execute(async (trx) => {
        const row = await trx.insertInto('platform_keys').values({ name, key_hash: keyHash }).returning('id').executeTakeFirstOrThrow();
        await appendAudit(trx, { actor: 'operator:cli', action: 'platform_key.created', data: { keyId: row.id, name } });
        console.log(`created platform key ${row.id} (${name}); shown once, store it now:\n\n  ${key}\n`);
      });
      break;
    }
    case 'list': {
      const rows = await db.selectFrom('platform_keys').select(['id', 'name', 'created_at', 'revoked_at']).orderBy('created_at').execute();
      for (const row of rows) {
        console.log(`${row.id}  ${row.name.padEnd(24)}  created ${row.created_at.toISOString()}  ${row.revoked_at ? `revoked ${new Date(row.revoked_at).toISOString()}` : 'active'}`);
      }
      if (rows.length === 0) console.log('no stored platform keys');
      break;
    }
    case 'revoke': {
      if (!argument || !/^[0-9a-f-]{36}$/.test(argument)) throw new UsageError('revoke needs a key id (see list)');
      const revoked = await db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('platform_keys')
          .set({ revoked_at: sql`now()` })
          .where('id', '=', argument)
          .where('revoked_at', 'is', null)
          .returning(['id', 'name'])
          .executeTakeFirst();
        if (row) await appendAudit(trx, { actor: 'operator:cli', action: 'platform_key.revoked', data: { keyId: row.id, name: row.name } });
        return row;
      });
      if (!revoked) throw new UsageError(`no active platform key ${argument}`);
      console.log(`revoked platform key ${revoked.id} (${revoked.name})`);
      break;
    }
    default:
      throw new UsageError(USAGE);
  }
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  console.error(err.message);
  process.exitCode = 2;
} finally {
  await db.destroy();
}
