import { z } from 'zod';
import { CollectionName } from './documents.js';
import { envPositiveInt } from './env.js';

/** The kinds of event a realtime stream carries (besides `reset`). */
export const DOCUMENT_EVENT_TYPES = ['document.created', 'document.updated', 'document.deleted'] as const;
export type DocumentEventType = (typeof DOCUMENT_EVENT_TYPES)[number];

/** Most collections one stream may follow. */
export const MAX_REALTIME_COLLECTIONS = 20;

/**
 * What to follow: `collections=a,b` (none: every collection of the tenant), and where to
 * resume (`lastEventId`: the `Last-Event-ID` header over REST; tRPC's httpSubscriptionLink
 * sends it by itself when it reconnects).
 */
export const RealtimeRequest = z.strictObject({
  collections: z
    .string()
    .max(MAX_REALTIME_COLLECTIONS * 64)
    .optional()
    .transform((value) => (value === undefined || value === '' ? [] : [...new Set(value.split(','))]))
    .pipe(z.array(CollectionName).max(MAX_REALTIME_COLLECTIONS, `at most ${MAX_REALTIME_COLLECTIONS} collections`))
    .describe('Comma-separated collection names; none or empty: every collection'),
  lastEventId: z.string().max(100).nullish().describe('Resume after this event (the Last-Event-ID header over REST)'),
});

/** One change of a document: `data` is the document after it (absent on delete). */
export const DocumentEvent = z.object({
  type: z.enum(DOCUMENT_EVENT_TYPES),
  collection: z.string(),
  id: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
  /** When the change committed (ISO 8601). */
  at: z.string(),
});
export type DocumentEvent = z.infer<typeof DocumentEvent>;

/**
 * The client may have missed events (it resumed from outside the window, or a Redis or
 * Postgres blip lost some): re-read what it shows, then go on from this stream.
 */
export const ResetEvent = z.object({ type: z.literal('reset'), reason: z.string(), at: z.string() });

export const RealtimeEvent = z.discriminatedUnion('type', [DocumentEvent, ResetEvent]);
export type RealtimeEvent = z.infer<typeof RealtimeEvent>;

/** Realtime settings of the api. */
export const realtimeEnv = {
  /** How far back `Last-Event-ID` can resume; from further back the client gets `reset`. */
  REALTIME_WINDOW_MS: envPositiveInt.default(5 * 60_000),
  /** A comment line on every open stream this often, so proxies do not close idle ones. */
  REALTIME_HEARTBEAT_MS: envPositiveInt.default(15_000),
  /**
   * Each open stream holds a slot of its tenant's `realtimeConnections` in Redis, renewed
   * every third of this; a slot not renewed (its api instance was killed) frees itself after it.
   */
  REALTIME_SLOT_TTL_MS: envPositiveInt.default(30_000),
  /** Bytes a stream may have waiting for a slow client before it is disconnected. */
  REALTIME_MAX_BUFFER_BYTES: envPositiveInt.default(1024 * 1024),
  /** Every open stream's credential and tenant are checked again this often (changes are pushed sooner). */
  REALTIME_RECHECK_MS: envPositiveInt.default(30_000),
};
