import { z } from 'zod';

/**
 * Ids shown to people carry a prefix that says what they are (`sgn_…`, `ten_…`, `usr_…`),
 * so a support engineer can tell a signup id from a tenant id at a glance. Inside the
 * database they are plain uuids; these helpers convert at the API boundary.
 */
/**
 * `whe_`: a webhook endpoint; `msg_`: one webhook message (an event for one endpoint, the
 * `webhook-id`); `mov_`: a move of a tenant between isolation models.
 */
export type IdPrefix = 'sgn' | 'ten' | 'usr' | 'whe' | 'msg' | 'mov';

const UUID_HEX = /^[0-9a-f]{32}$/;

export function toPublicId(prefix: IdPrefix, uuid: string): string {
  return `${prefix}_${uuid.replaceAll('-', '')}`;
}

/** The uuid behind a public id, or null when the id is not of that prefix and form. */
export function fromPublicId(prefix: IdPrefix, id: string): string | null {
  if (!id.startsWith(`${prefix}_`)) return null;
  const hex = id.slice(prefix.length + 1).toLowerCase();
  if (!UUID_HEX.test(hex)) return null;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A zod schema for a public id of one prefix; parses to the uuid behind it. */
export function publicIdSchema(prefix: IdPrefix) {
  return z
    .string()
    .max(64)
    .refine((id) => fromPublicId(prefix, id) !== null, { message: `must be an id of the form ${prefix}_<32 hex>` });
}
