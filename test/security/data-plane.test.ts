import { beforeAll, describe, expect, it } from 'vitest';
import { request } from '../support/http.js';
import { useStack } from '../support/stack.js';

/**
 * Tenant A can never read or write tenant B's data, whatever it sends: ids, collections,
 * filters, credentials. (Schema isolation; database isolation: security/database-isolation.test.ts.)
 */
const stack = useStack({ api: { DOCUMENT_MAX_BYTES: '2048' } });
let a: { tenantId: string; token: string };
let b: { tenantId: string; token: string };
let bDocId: string;

const docs = (token: string, method: string, path: string, body?: unknown) =>
  request(stack.api.baseUrl, method, `/v1/collections${path}`, { token, body });

beforeAll(async () => {
  [a, b] = await Promise.all([stack.signUpTenant({ orgName: 'Tenant A' }), stack.signUpTenant({ orgName: 'Tenant B' })]);
  const created = await docs(b.token, 'POST', '/notes/documents', { data: { title: "B's secret", status: 'open' } });
  bDocId = created.body.id;
});

describe('documents API', () => {
  it('creates, reads, lists with filters and pages, replaces and deletes', async () => {
    const created = await docs(a.token, 'POST', '/notes/documents', { data: { title: 'first', status: 'open', n: 1 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.any(String), collection: 'notes', data: { title: 'first', status: 'open', n: 1 } });
    for (let i = 2; i <= 5; i++) await docs(a.token, 'POST', '/notes/documents', { data: { title: `n${i}`, status: i % 2 ? 'open' : 'done', n: i } });
    await docs(a.token, 'POST', '/tasks/documents', { data: { title: 'other collection', status: 'open' } });

    const open = await docs(a.token, 'GET', '/notes/documents?where[status]=open&limit=100');
    expect(open.body.items.map((d: { data: { n: number } }) => d.data.n).sort()).toEqual([1, 3, 5]);
    expect((await docs(a.token, 'GET', '/notes/documents?where[status]=open&where[n]=3')).body.items).toHaveLength(1);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await docs(a.token, 'GET', `/notes/documents?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.body.items.map((d: { id: string }) => d.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);

    const replaced = await docs(a.token, 'PUT', `/notes/documents/${created.body.id}`, { data: { title: 'first, edited' } });
    expect(replaced.body).toMatchObject({ data: { title: 'first, edited' } });
    expect(new Date(replaced.body.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(created.body.updatedAt).getTime());
    expect((await docs(a.token, 'DELETE', `/notes/documents/${created.body.id}`)).status).toBe(200);
    expect((await docs(a.token, 'GET', `/notes/documents/${created.body.id}`)).body.code).toBe('document_not_found');
  });

  it('refuses bad collection names, bad filters and oversized documents, writing nothing', async () => {
    for (const path of ['/Notes/documents', '/..%2Fetc/documents', '/a%20b/documents', `/${'x'.repeat(64)}/documents`]) {
      const res = await docs(a.token, 'POST', path, { data: {} });
      expect(res.status, path).toBe(400);
    }
    const filter = await docs(a.token, 'GET', `/notes/documents?where[${encodeURIComponent("x') or true --")}]=1`);
    expect([filter.status, filter.body.code]).toEqual([400, 'validation_failed']);
    const big = await docs(a.token, 'POST', '/notes/documents', { data: { blob: 'x'.repeat(3000) } });
    expect([big.status, big.body.code]).toEqual([413, 'document_too_large']);
    const notObject = await docs(a.token, 'POST', '/notes/documents', { data: [1, 2] });
    expect(notObject.status).toBe(400);
    expect((await docs(a.token, 'GET', '/notes/documents?cursor=not-a-uuid')).status).toBe(400);
  });
});

describe('cross-tenant attempts (tenant A against tenant B)', () => {
  it("B's document id is 404 for A on read, replace and delete — as if it did not exist — and B's data is unchanged", async () => {
    for (const [method, body] of [['GET'], ['PUT', { data: { title: 'pwned' } }], ['DELETE']] as const) {
      const res = await docs(a.token, method, `/notes/documents/${bDocId}`, body);
      expect([res.status, res.body.code], method).toEqual([404, 'document_not_found']);
    }
    const mine = await docs(b.token, 'GET', `/notes/documents/${bDocId}`);
    expect(mine.body.data).toEqual({ title: "B's secret", status: 'open' });
  });

  it("no listing or filter of A ever returns B's rows", async () => {
    const lists = [
      await docs(a.token, 'GET', '/notes/documents?limit=100'),
      await docs(a.token, 'GET', `/notes/documents?where[title]=${encodeURIComponent("B's secret")}`),
      await docs(a.token, 'GET', `/notes/documents?cursor=00000000-0000-4000-8000-000000000000&limit=100`),
    ];
    for (const list of lists) {
      expect(list.status).toBe(200);
      expect(JSON.stringify(list.body)).not.toContain("B's secret");
    }
  });

  it("A's API keys act only on A's data", async () => {
    await stack.admin('PUT', `/v1/tenants/${a.tenantId}/billing-state`, { body: { capabilities: ['files', 'api_keys'] } });
    const key = (await request(stack.api.baseUrl, 'POST', '/v1/api-keys', { token: a.token, body: { name: 'writer', scope: 'write' } })).body.key;
    expect((await docs(key, 'GET', `/notes/documents/${bDocId}`)).status).toBe(404);
    const created = await docs(key, 'POST', '/notes/documents', { data: { by: 'key' } });
    expect(created.status).toBe(201);
    expect((await docs(b.token, 'GET', `/notes/documents/${created.body.id}`)).status).toBe(404);
  });

  it('a tenant without a valid credential reads nothing', async () => {
    expect((await docs('tnt_s_forged', 'GET', '/notes/documents')).status).toBe(401);
    expect((await request(stack.api.baseUrl, 'GET', '/v1/collections/notes/documents')).status).toBe(401);
  });
});
