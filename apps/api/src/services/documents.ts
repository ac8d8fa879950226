import type { TenantRef, TenantStore } from '@tenantry/db';
import { type DocumentEventType, NotFoundError, PayloadTooLargeError, ValidationError } from '@tenantry/domain';
import { type Transaction, sql } from 'kysely';
import type { Database } from '@tenantry/db';
import type { RealtimeHub } from '../realtime/hub.js';

interface DocumentRow {
  id: string;
  collection: string;
  data: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

const view = (row: DocumentRow) => ({
  id: row.id,
  collection: row.collection,
  data: row.data,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

const notFound = () => new NotFoundError('Document', 'document_not_found');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The tenant data plane: JSON documents in collections. Every statement runs through the
 * tenant store, i.e. as the data role in the tenant's own context, so another tenant's
 * document is not "forbidden" but simply absent: 404, exactly like one that never existed.
 */
export class DocumentsService {
  constructor(
    private readonly store: TenantStore,
    private readonly maxDocumentBytes: number,
    private readonly realtime: RealtimeHub,
  ) {}

  /**
   * Run a write in the tenant's store and, when the tenant has realtime (`notify`), publish
   * its change once it committed: never for a write that rolled back. Its tenant is marked
   * pending before it starts, so a write whose publish never happens (the api died in
   * between) turns into a reset for the tenant's streams rather than a silent gap
   * (realtime/hub.ts).
   */
  private async write(
    tenant: TenantRef,
    notify: boolean,
    type: DocumentEventType,
    fn: (trx: Transaction<Database>) => Promise<DocumentRow | undefined>,
  ): Promise<DocumentRow | undefined> {
    const token = notify ? await this.realtime.beginWrite(tenant.id) : undefined;
    let row: DocumentRow | undefined;
    try {
      row = await this.store.run(tenant, fn);
    } catch (err) {
      this.realtime.abandonWrite(token);
      throw err;
    }
    if (!row) this.realtime.abandonWrite(token);
    else if (notify) {
      const at = (type === 'document.deleted' ? new Date() : row.updated_at).toISOString();
      await this.realtime.publish(tenant.id, { type, collection: row.collection, id: row.id, ...(type === 'document.deleted' ? {} : { data: row.data }), at }, token);
    }
    return row;
  }

  private serialise(data: Record<string, unknown>): string {
    const json = JSON.stringify(data);
    if (Buffer.byteLength(json) > this.maxDocumentBytes) {
      throw new PayloadTooLargeError('document_too_large', `A document may be at most ${this.maxDocumentBytes} bytes of JSON`);
    }
    return json;
  }

  async create(tenant: TenantRef, input: { collection: string; data: Record<string, unknown> }, notify = false) {
    const json = this.serialise(input.data);
    const row = await this.write(tenant, notify, 'document.created', async (trx) => {
      const { rows } = await sql<DocumentRow>`
        insert into documents (collection, data) values (${input.collection}, ${json}::jsonb)
        returning id, collection, data, created_at, updated_at`.execute(trx);
      return rows[0]!;
    });
    return view(row!);
  }

  async get(tenant: TenantRef, input: { collection: string; id: string }) {
    const row = await this.store.run(tenant, async (trx) => {
      const { rows } = await sql<DocumentRow>`
        select id, collection, data, created_at, updated_at from documents
        where id = ${input.id} and collection = ${input.collection}`.execute(trx);
      return rows[0];
    });
    if (!row) throw notFound();
    return view(row);
  }

  async replace(tenant: TenantRef, input: { collection: string; id: string; data: Record<string, unknown> }, notify = false) {
    const json = this.serialise(input.data);
    const row = await this.write(tenant, notify, 'document.updated', async (trx) => {
      const { rows } = await sql<DocumentRow>`
        update documents set data = ${json}::jsonb, updated_at = now()
        where id = ${input.id} and collection = ${input.collection}
        returning id, collection, data, created_at, updated_at`.execute(trx);
      return rows[0];
    });
    if (!row) throw notFound();
    return view(row);
  }

  async delete(tenant: TenantRef, input: { collection: string; id: string }, notify = false) {
    const row = await this.write(tenant, notify, 'document.deleted', async (trx) => {
      const { rows } = await sql<DocumentRow>`
        delete from documents where id = ${input.id} and collection = ${input.collection}
        returning id, collection, data, created_at, updated_at`.execute(trx);
      return rows[0];
    });
    if (!row) throw notFound();
    return view(row);
  }

  /**
   * Keyset pagination in id order (stable, each page an index range). `where` filters
   * compare top-level fields as text; names and values are bind parameters.
   */
  async list(tenant: TenantRef, input: { collection: string; limit: number; cursor?: string | undefined; where?: Record<string, string> | undefined }) {
    if (input.cursor !== undefined && !UUID.test(input.cursor)) {
      throw new ValidationError([{ field: 'cursor', message: 'is not a cursor this api issued' }]);
    }
    const filters = Object.entries(input.where ?? {}).map(([field, value]) => sql`and data ->> ${field} = ${value}`);
    const rows = await this.store.run(tenant, async (trx) => {
      const { rows } = await sql<DocumentRow>`
        select id, collection, data, created_at, updated_at from documents
        where collection = ${input.collection}
          ${input.cursor ? sql`and id > ${input.cursor}` : sql``}
          ${sql.join(filters, sql` `)}
        order by id
        limit ${input.limit + 1}`.execute(trx);
      return rows;
    });
    const page = rows.slice(0, input.limit);
    return { items: page.map(view), nextCursor: rows.length > input.limit ? (page.at(-1)?.id ?? null) : null };
  }
}
