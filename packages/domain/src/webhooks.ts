import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { publicIdSchema } from './ids.js';

/**
 * Outgoing webhooks to billing systems (Standard Webhooks). The catalog of event types is
 * here so endpoints can subscribe to any of them, including those a later phase emits.
 */
export const WebhookEventType = z.enum([
  'tenant.provisioned',
  'tenant.suspended',
  'tenant.unsuspended',
  'tenant.deleted',
  'tenant.restored',
  'tenant.purged',
  'invoice.finalized',
  'invoice.voided',
]);
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/** Why a webhook target is refused. */
export class UnsafeWebhookTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeWebhookTargetError';
  }
}

/**
 * Whether an address is an ordinary public unicast address. Everything ipaddr.js knows
 * as special — loopback, private (10/8, 172.16/12, 192.168/16), link-local (169.254/16,
 * fe80::/10, where cloud metadata lives), unique-local (fc00::/7), CGNAT (100.64/10),
 * multicast, reserved, unspecified, documentation, 6to4/Teredo/NAT64 wrappers — is not.
 * IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it carries.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.process(address);
  return parsed.range() === 'unicast';
}

/** Hostnames that always mean this machine, whatever DNS says. */
const LOCAL_NAMES = /(^|\.)(localhost|localhost\.localdomain)\.?$/i;

/**
 * The checks a webhook URL gets when it is registered (and again at delivery): https only
 * and no literal special address, unless private targets are allowed (tests, on-premises
 * receivers), which also allows http. Names are resolved and checked at delivery time,
 * when the address that is actually connected to is known.
 */
export function checkWebhookUrl(raw: string, allowPrivate: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UnsafeWebhookTargetError('is not a URL');
  }
  if (url.username || url.password) throw new UnsafeWebhookTargetError('must not carry credentials');
  if (url.protocol !== 'https:' && !(allowPrivate && url.protocol === 'http:')) {
    throw new UnsafeWebhookTargetError(allowPrivate ? 'must be an http or https URL' : 'must be an https URL');
  }
  if (allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (LOCAL_NAMES.test(host)) throw new UnsafeWebhookTargetError('must not target this machine');
  if (ipaddr.isValid(host) && !isPublicAddress(host)) throw new UnsafeWebhookTargetError(`must not target a private or special address (${host})`);
  return url;
}

export const WebhookUrl = z
  .string()
  .max(2048)
  .refine((v) => URL.canParse(v), { message: 'must be a URL' });

export const CreateWebhookRequest = z.strictObject({
  url: WebhookUrl,
  /** The event types to send; omitted: all of them, including types added later. */
  events: z.array(WebhookEventType).min(1).max(20).optional(),
  description: z.string().trim().max(200).optional(),
});

export const WebhookEndpointView = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(WebhookEventType).nullable(),
  description: z.string().nullable(),
  status: z.enum(['enabled', 'disabled']),
  disabledReason: z.string().nullable(),
  /** Since when every delivery attempt has failed (null: the last one succeeded). */
  failingSince: z.string().nullable(),
  createdAt: z.string(),
});
export type WebhookEndpointView = z.infer<typeof WebhookEndpointView>;

/** The answer to a registration: the only time the signing secret is shown. */
export const CreatedWebhookEndpoint = WebhookEndpointView.extend({
  secret: z.string().describe('The signing secret (whsec_…). Shown once; store it with the receiver.'),
});

export const WebhookEndpointList = z.object({ items: z.array(WebhookEndpointView) });

export const WebhookEndpointIdRequest = z.strictObject({ id: publicIdSchema('whe') });
