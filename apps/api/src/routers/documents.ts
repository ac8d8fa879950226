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

const tenantRef = (tenant: { id: string; isolation: Isolation; schema_name: string | null }) => ({
  id: tenant.id,
  isolation: tenant.isolation,
  schemaName: tenant.schema_name,
});

/** The tenant data plane: JSON documents in named collections (session token or API key). */
export const documentsRouter = router({
  create: tenantProcedure
    .meta({ rest: { method: 'POST', path: '/collections/{collection}/documents', successStatus: 201, auth: 'tenant' } })
    .input(CreateDocumentRequest)
    .output(DocumentView)
    .mutation(({ ctx, input }) => ctx.deps.documents.create(tenantRef(ctx.tenant), input)),

  list: tenantProcedure
    .meta({ rest: { method: 'GET', path: '/collections/{collection}/documents', auth: 'tenant' } })
    .input(ListDocumentsRequest)
    .output(DocumentPage)
    .query(({ ctx, input }) => ctx.deps.documents.list(tenantRef(ctx.tenant), input)),

  get: tenantProcedure
    .meta({ rest: { method: 'GET', path: '/collections/{collection}/documents/{id}', auth: 'tenant' } })
    .input(DocumentRequest)
    .output(DocumentView)
    .query(({ ctx, input }) => ctx.deps.documents.get(tenantRef(ctx.tenant), input)),

  replace: tenantProcedure
    .meta({ rest: { method: 'PUT', path: '/collections/{collection}/documents/{id}', auth: 'tenant' } })
    .input(ReplaceDocumentRequest)
    .output(DocumentView)
    .mutation(({ ctx, input }) => ctx.deps.documents.replace(tenantRef(ctx.tenant), input)),

  delete: tenantProcedure
    .meta({ rest: { method: 'DELETE', path: '/collections/{collection}/documents/{id}', auth: 'tenant' } })
    .input(DocumentRequest)
    .output(DocumentView)
    .mutation(({ ctx, input }) => ctx.deps.documents.delete(tenantRef(ctx.tenant), input)),
});
