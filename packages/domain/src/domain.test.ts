import { describe, expect, it } from 'vitest';
import { commonPasswordCount, isCommonPassword } from './common-passwords.js';
import { fromPublicId, normaliseEmail, slugify, tenantSchemaName, toPublicId } from './index.js';

describe('normaliseEmail', () => {
  it('trims and lower-cases', () => {
    expect(normaliseEmail('  Ada.Lovelace@Example.COM \t')).toBe('ada.lovelace@example.com');
  });
});

describe('slugify', () => {
  it.each([
    ['Acme Inc', 'acme-inc'],
    ['  Acme -- Inc__  ', 'acme-inc'],
    ['Café Ünïcode', 'cafe-unicode'],
    ['東京チーム', 'org'],
    ['a'.repeat(64), 'a'.repeat(48)],
  ])('%s → %s', (name, slug) => {
    expect(slugify(name)).toBe(slug);
  });
});

describe('public ids', () => {
  it('round-trip a uuid and refuse another prefix or a malformed id', () => {
    const uuid = '0b9c1f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
    const id = toPublicId('ten', uuid);
    expect(id).toBe('ten_0b9c1f7e1c2d4e5f8a9b0c1d2e3f4a5b');
    expect(fromPublicId('ten', id)).toBe(uuid);
    expect(fromPublicId('sgn', id)).toBeNull();
    expect(fromPublicId('ten', 'ten_xyz')).toBeNull();
    expect(fromPublicId('ten', `${id}'; drop table tenants; --`)).toBeNull();
  });
});

describe('tenantSchemaName', () => {
  it('derives a strict identifier from the tenant uuid only', () => {
    expect(tenantSchemaName('0B9C1F7E-1C2D-4E5F-8A9B-0C1D2E3F4A5B')).toBe('t_0b9c1f7e1c2d4e5f8a9b0c1d2e3f4a5b');
    expect(() => tenantSchemaName('x"; drop schema public; --')).toThrow(/not a tenant schema name/);
  });
});

describe('common passwords', () => {
  it('ships at least 10,000 entries and matches case-insensitively', () => {
    expect(commonPasswordCount()).toBeGreaterThanOrEqual(10_000);
    expect(isCommonPassword('password1')).toBe(true);
    expect(isCommonPassword('PASSWORD1')).toBe(true);
    expect(isCommonPassword('violet-otter-stapler-42')).toBe(false);
  });
});
