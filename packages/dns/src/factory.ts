import { PowerDnsProvider } from './powerdns.js';
import { type DnsProvider, NoDnsProvider } from './provider.js';

export interface DnsSettings {
  TENANT_DNS_PROVIDER: 'none' | 'powerdns';
  TENANT_DNS_ZONE?: string | undefined;
  TENANT_DNS_TARGET?: string | undefined;
  PDNS_API_URL?: string | undefined;
  PDNS_API_KEY?: string | undefined;
}

/** The provider the settings name (each app's config has already checked they are complete). */
export function createDnsProvider(settings: DnsSettings): DnsProvider {
  if (settings.TENANT_DNS_PROVIDER === 'none') return new NoDnsProvider();
  return new PowerDnsProvider({
    apiUrl: settings.PDNS_API_URL!,
    apiKey: settings.PDNS_API_KEY!,
    zone: settings.TENANT_DNS_ZONE!,
    target: settings.TENANT_DNS_TARGET!,
  });
}
