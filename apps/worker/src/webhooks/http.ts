import { type LookupAddress, lookup as dnsLookup } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { UnsafeWebhookTargetError, checkWebhookUrl, isPublicAddress } from '@tenantry/domain';

/** Resolves a hostname to every address it has (node:dns lookup, i.e. getaddrinfo, by default). */
export type Resolver = (hostname: string, family: number) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (hostname, family) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, family }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

/**
 * A `lookup` for http(s).request that resolves the name, refuses it if ANY of its
 * addresses is private or special (unless allowed), and hands the socket exactly the
 * addresses it checked. The check and the connection use one resolution, so a DNS answer
 * that changes in between (a rebind) cannot slip a private address past the check.
 */
export function pinnedLookup(allowPrivate: boolean, resolver: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolver(hostname, options.family === 4 || options.family === 6 ? options.family : 0).then(
      (addresses) => {
        if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
        const refused = allowPrivate ? undefined : addresses.find((a) => !isPublicAddress(a.address));
        if (refused) {
          return callback(new UnsafeWebhookTargetError(`${hostname} resolves to a private or special address (${refused.address})`), '', 0);
        }
        if (options.all) return (callback as unknown as (err: null, addresses: LookupAddress[]) => void)(null, addresses);
        callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

export interface PostResult {
  status: number;
}

/**
 * POST a webhook body. Checks the URL again (scheme, literal addresses: those never go
 * through `lookup`), connects only through pinnedLookup, follows no redirect, keeps no
 * connection alive, and gives up after `timeoutMs` for the whole exchange.
 */
export async function postWebhook(
  rawUrl: string,
  headers: Record<string, string>,
  body: string,
  options: { allowPrivate: boolean; timeoutMs: number; resolver?: Resolver },
): Promise<PostResult> {
  const url = checkWebhookUrl(rawUrl, options.allowPrivate);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'Tenantry-Webhooks/1' },
        lookup: pinnedLookup(options.allowPrivate, options.resolver),
        agent: false,
        signal: AbortSignal.timeout(options.timeoutMs),
      },
      (res) => {
        // The receiver's answer is not used; read and drop it so the socket closes cleanly.
        res.on('data', () => undefined);
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        res.on('error', reject);
      },
    );
    req.on('error', (err: Error) => {
      if (err.name === 'AbortError' || err.name === 'TimeoutError') reject(new Error(`no answer within ${options.timeoutMs} ms`));
      else reject(err);
    });
    req.end(body);
  });
}
