import {
  CreateDocumentRequest,
  DocumentPage,
  DocumentRequest,
  DocumentView,
  type Isolation,
  ListDocumentsRequest,
  ReplaceDocumentRequest,
} from '@tenantry/domain';
import { router, tenantProcedure } from '../trpc.js';

const tenantRef = (tenant: { id: string; isolation: Isolation; schema_name: string | null; placement_generation: number }) => ({
  id: tenant.id,
  isolation: tenant.isolation,
  schemaName: tenant.schema_name,
  placementGeneration: tenant.placement_generation,
});

/** Changes are published for realtime streams only where the plan has realtime: nobody else could follow them. */
const notifies = (entitlements: { capabilities: readonly string[] }) => entitlements.capabilities.includes('realtime');

/** The tenant data plane: JSON documents in named collections (session token or API key). */
export const documentsRouter = router({
  create: tenantProcedure
    .meta({
      rest: {
        method: 'POST',
        path: '/collections/{collection}/documents',
        summary: 'Create a document',
        description: "Stores a JSON document in one of the caller's tenant's collections. The JSON is stored exactly as sent: nesting deeper than 64, numbers a double cannot hold exactly, lone surrogates and `__proto__` keys are refused (400). Once the tenant's `storageBytes` reaches its limit, 402 `quota_exceeded` (reads and deletes still work). While a move of the tenant to another isolation model switches stores, a write waits a moment, then may get 503 `tenant_moving` with `Retry-After` (nothing was written: send it again).",
        successStatus: 201,
        auth: 'tenant',
      },
      addsTo: 'storageBytes',
    })
    .input(CreateDocumentRequest)
    .output(DocumentView)
    .mutation(({ ctx, input }) => ctx.deps.documents.create(tenantRef(ctx.tenant), input, notifies(ctx.entitlements))),

  list: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/collections/{collection}/documents',
        summary: 'List documents',
        description: "Lists a collection's documents with keyset pagination, optionally filtered by top-level fields (`where[field]=value`, string equality). Only the caller's tenant's documents are ever visible.",
        auth: 'tenant',
      },
    })
    .input(ListDocumentsRequest)
    .output(DocumentPage)
    .query(({ ctx, input }) => ctx.deps.documents.list(tenantRef(ctx.tenant), input)),

  get: tenantProcedure
    .meta({
      rest: {
        method: 'GET',
        path: '/collections/{collection}/documents/{id}',
        summary: 'Read a document',
        description: "One document of the caller's tenant; another tenant's id is 404, as is an unknown one.",
        auth: 'tenant',
      },
    })
    .input(DocumentRequest)
    .output(DocumentView)
    .query(({ ctx, input }) => ctx.deps.documents.get(tenantRef(ctx.tenant), input)),

  replace: tenantProcedure
    .meta({
      rest: {
        method: 'PUT',
        path: '/collections/{collection}/documents/{id}',
        summary: 'Replace a document',
        description: "Replaces a document's data wholesale (same rules as create, 503 `tenant_moving` during a move's switch included).",
        auth: 'tenant',
      },
      addsTo: 'storageBytes',
    })
    .input(ReplaceDocumentRequest)
    .output(DocumentView)
    .mutation(({ ctx, input }) => ctx.deps.documents.replace(tenantRef(ctx.tenant), input, notifies(ctx.entitlements))),

  delete: tenantProcedure
    .meta({
      rest: {
        method: 'DELETE',
        path: '/collections/{collection}/documents/{id}',
        summary: 'Delete a document',
        description: "Deletes a document and answers it as it was. Deletes always work, whatever the quota state (during a move's switch they wait, then may get 503 `tenant_moving`, like every write).",
        auth: 'tenant',
      },
    })
    .input(DocumentRequest)
    .output(DocumentView)
    .mutation(({ ctx, input }) => ctx.deps.documents.delete(tenantRef(ctx.tenant), input, notifies(ctx.entitlements))),
});
