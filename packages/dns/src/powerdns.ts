import { DnsError, type DnsProvider, tenantHostname } from './provider.js';

export interface PowerDnsOptions {
  /** The PowerDNS HTTP API, e.g. http://127.0.0.1:8081 */
  apiUrl: string;
  apiKey: string;
  /** The zone tenants live under, e.g. tenants.example.com (must exist in PowerDNS). */
  zone: string;
  /** What every tenant name points at: an A record (IPv4) or a CNAME (a hostname). */
  target: string;
  ttlSeconds?: number;
  serverId?: string;
  /** Per-request timeout. */
  timeoutMs?: number;
}

const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/;

interface RRSet {
  name: string;
  type: string;
  records: Array<{ content: string; disabled: boolean }>;
}

/**
 * PowerDNS Authoritative through its HTTP API: one RRset per tenant, replaced or deleted
 * with a PATCH on the zone (both idempotent on PowerDNS's side).
 */
export class PowerDnsProvider implements DnsProvider {
  readonly zone: string;
  private readonly type: 'A' | 'CNAME';
  private readonly zoneUrl: string;

  constructor(private readonly options: PowerDnsOptions) {
    this.zone = options.zone.replace(/\.$/, '');
    this.type = IPV4.test(options.target) ? 'A' : 'CNAME';
    this.zoneUrl = `${options.apiUrl.replace(/\/$/, '')}/api/v1/servers/${options.serverId ?? 'localhost'}/zones/${this.zone}.`;
  }

  private fqdn(slug: string): string {
    return `${tenantHostname(slug, this.zone)}.`;
  }

  private async call(method: string, body?: unknown): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.zoneUrl, {
        method,
        headers: { 'X-API-Key': this.options.apiKey, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5_000),
      });
    } catch (err) {
      throw new DnsError(`PowerDNS API unreachable: ${(err as Error).message}`, { cause: err });
    }
    if (!res.ok) throw new DnsError(`PowerDNS API ${method} ${res.status}: ${(await res.text()).slice(0, 200)}`);
    return res;
  }

  async ensureTenantRecord(slug: string): Promise<void> {
    const content = this.type === 'CNAME' ? `${this.options.target.replace(/\.$/, '')}.` : this.options.target;
    await this.call('PATCH', {
      rrsets: [
        {
          name: this.fqdn(slug),
          type: this.type,
          ttl: this.options.ttlSeconds ?? 300,
          changetype: 'REPLACE',
          records: [{ content, disabled: false }],
        },
      ],
    });
  }

  async removeTenantRecord(slug: string): Promise<void> {
    await this.call('PATCH', { rrsets: [{ name: this.fqdn(slug), type: this.type, changetype: 'DELETE' }] });
  }

  async readTenantRecord(slug: string): Promise<string[] | null> {
    const zone = (await (await this.call('GET')).json()) as { rrsets: RRSet[] };
    const name = this.fqdn(slug);
    const rrset = zone.rrsets.find((r) => r.name === name && r.type === this.type);
    return rrset ? rrset.records.filter((r) => !r.disabled).map((r) => r.content) : null;
  }
}
