export * from './provider.js';
export * from './powerdns.js';
export { createDnsProvider, type DnsSettings } from './factory.js';
