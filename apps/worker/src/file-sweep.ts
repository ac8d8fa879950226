import { type Db, releaseExpiredUploads, removeTrashEntries, trashedObjects } from '@tenantry/db';
import type { FileStorage } from '@tenantry/files';

const BATCH = 500;

/**
 * An api removes what it retires right away (an overwritten or deleted file's object, an
 * upload that failed); a request that could not (the storage or Postgres failed, the api
 * was killed) leaves it to this pass, which also releases uploads whose reservation
 * expired: their bytes go back to the tenant's counter and their partial objects go.
 * Trash younger than `graceMs` is left to the request that is removing it now.
 */
export async function sweepFiles(db: Db, storage: FileStorage, graceMs = 60_000): Promise<{ released: number; removed: number }> {
  let released = 0;
  for (let n = BATCH; n === BATCH; released += n) n = await releaseExpiredUploads(db, BATCH);
  let removed = 0;
  for (;;) {
    const batch = await trashedObjects(db, BATCH, graceMs);
    if (batch.length === 0) break;
    const byTenant = new Map<string, string[]>();
    for (const { tenantId, object } of batch) byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), object]);
    for (const [tenantId, objects] of byTenant) {
      await storage.remove(tenantId, objects);
      await removeTrashEntries(db, objects);
      removed += objects.length;
    }
    if (batch.length < BATCH) break;
  }
  return { released, removed };
}
