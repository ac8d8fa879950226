import { Resolver } from 'node:dns/promises';
import { DnsError, NoDnsProvider, PowerDnsProvider } from '@tenantry/dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivatePowerDns } from './support/powerdns.js';

let pdns: PrivatePowerDns;
let resolver: Resolver;

beforeAll(async () => {
  pdns = await PrivatePowerDns.start();
  resolver = new Resolver();
  resolver.setServers([`127.0.0.1:${pdns.dnsPort}`]);
});

afterAll(async () => {
  await pdns?.stop();
});

const provider = (target = '127.0.0.10') => new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: pdns.apiKey, zone: pdns.zone, target });

describe('PowerDNS provider (real pdns_server)', () => {
  it('creates <slug>.<zone>, answered over DNS; idempotent; removal makes the name vanish', async () => {
    await provider().ensureTenantRecord('acme');
    await provider().ensureTenantRecord('acme');
    expect(await resolver.resolve4('acme.tenants.test')).toEqual(['127.0.0.10']);
    expect(await provider().readTenantRecord('acme')).toEqual(['127.0.0.10']);

    await provider().removeTenantRecord('acme');
    await provider().removeTenantRecord('acme');
    await expect(resolver.resolve4('acme.tenants.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await provider().readTenantRecord('acme')).toBeNull();
  });

  it('points tenants at a hostname with a CNAME when the target is not an address', async () => {
    await provider('ingress.example.net').ensureTenantRecord('globex');
    expect(await resolver.resolveCname('globex.tenants.test')).toEqual(['ingress.example.net']);
  });

  it('refuses names that are not one DNS label, and reports an unreachable API clearly', async () => {
    await expect(provider().ensureTenantRecord('a.b')).rejects.toThrow(DnsError);
    await expect(provider().ensureTenantRecord('-x')).rejects.toThrow(/not a DNS label/);
    const down = new PowerDnsProvider({ apiUrl: 'http://127.0.0.1:1', apiKey: 'k', zone: 'tenants.test', target: '127.0.0.1', timeoutMs: 500 });
    await expect(down.ensureTenantRecord('acme')).rejects.toThrow(/PowerDNS API unreachable/);
    const wrongKey = new PowerDnsProvider({ apiUrl: pdns.apiUrl, apiKey: 'wrong', zone: 'tenants.test', target: '127.0.0.1' });
    await expect(wrongKey.ensureTenantRecord('acme')).rejects.toThrow(/401/);
  });

  it('none configured: nothing happens', async () => {
    const none = new NoDnsProvider();
    await none.ensureTenantRecord();
    expect(await none.readTenantRecord()).toBeNull();
    expect(none.zone).toBeNull();
  });
});
