import { z } from 'zod';
import { pageLimit } from './paging.js';

/** Collection names: lower-case, start with a letter, no path characters. */
export const CollectionName = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'must be 1–63 of a-z 0-9 _ - starting with a letter');

/** Top-level field names usable in `where` filters. */
const FieldName = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export const DocumentData = z.record(z.string(), z.unknown());

export const DocumentView = z.object({
  id: z.string(),
  collection: z.string(),
  data: DocumentData,
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const CreateDocumentRequest = z.strictObject({ collection: CollectionName, data: DocumentData });
export const DocumentRequest = z.strictObject({ collection: CollectionName, id: z.uuid({ message: 'must be a document id' }) });
export const ReplaceDocumentRequest = DocumentRequest.extend({ data: DocumentData });

export const ListDocumentsRequest = z.strictObject({
  collection: CollectionName,
  limit: pageLimit(100, 20),
  cursor: z.string().max(64).optional(),
  /** Equality on top-level fields: `where[status]=open`. Values compare as text. */
  where: z
    .record(z.string().regex(FieldName, 'field names are letters, digits and _'), z.string().max(1024))
    .refine((w) => Object.keys(w).length <= 10, 'at most 10 filters')
    .optional(),
});

export const DocumentPage = z.object({ items: z.array(DocumentView), nextCursor: z.string().nullable() });
