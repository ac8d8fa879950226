import { createDb } from '../client.js';
import { verifyAuditChain } from '../audit-verify.js';
import { loadMigrateConfig } from './config.js';

/** `pnpm audit:verify`: exit 0 if the audit chain is intact, 1 naming the first broken entry. */
const { DATABASE_URL } = loadMigrateConfig();
const db = createDb(DATABASE_URL, { maxConnections: 1, applicationName: 'tenantry-audit-verify' });
try {
  const verdict = await verifyAuditChain(db);
  if (verdict.intact) {
    console.log(`audit chain intact: ${verdict.entries} entries`);
  } else {
    console.error(`audit chain BROKEN at entry #${verdict.brokenAt.chainSeq} (id ${verdict.brokenAt.id}): ${verdict.brokenAt.reason}`);
    process.exitCode = 1;
  }
} finally {
  await db.destroy();
}
