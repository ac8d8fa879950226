/// <reference lib="dom" />
// (page.evaluate callbacks run in the browser)
import { fromPublicId } from '@tenantry/domain';
import { sql } from 'kysely';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from '../support/apps.js';
import { request, waitFor } from '../support/http.js';
import { useStack } from '../support/stack.js';
import { expectAccessible, launchChromium, newPage, screenshot, signIn } from './browser.js';

/**
 * The dashboard in a real Chromium against a real api and worker (Postgres, Redis): what
 * an operator does, checked through the api afterwards. One browser for the file; each
 * test starts from its own profile (no cookies) unless it says otherwise.
 */
// No storage sample on a schedule: "Storage used" stays "—" for the tenants made here
// (billing-panels.test.ts shows it filled in).
const stack = useStack({ workerEnv: { USAGE_SAMPLE_INTERVAL_MS: '3600000' } });
let browser: Browser;

interface Made {
  id: string;
  slug: string;
  name: string;
}
const tenants: Record<string, Made> = {};
/** Every tenant the api lists (ours, and the installation's default tenant). */
let total = 0;

async function makeTenant(name: string, plan: string): Promise<Made> {
  const email = `${name.toLowerCase().replace(/\W+/g, '-')}-${process.pid}@example.com`;
  const created = await stack.admin('POST', '/v1/tenants', { body: { name, ownerEmail: email, plan } });
  expect(created.status).toBe(202);
  const tenant = await waitFor(async () => {
    const res = await stack.admin('GET', `/v1/tenants/${created.body.tenantId}`);
    return res.body.status === 'active' ? res.body : undefined;
  }, 30_000);
  return { id: tenant.id, slug: tenant.slug, name: tenant.name };
}

/** Every URL the page requested or navigated to, to check no key ever appears in one. */
function recordUrls(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (req) => urls.push(req.url()));
  page.on('framenavigated', (frame) => urls.push(frame.url()));
  return urls;
}

beforeAll(async () => {
  browser = await launchChromium();
  const made = await Promise.all([
    makeTenant('Acme Rockets', 'pro'),
    makeTenant('Acme Foods', 'free'),
    makeTenant('Globex Labs', 'free'),
    makeTenant('Initech Systems', 'trial'),
    makeTenant('Umbrella Health', 'enterprise'),
  ]);
  for (const t of made) tenants[t.slug] = t;
  total = (await stack.admin('GET', '/v1/tenants?limit=100')).body.items.length;
  expect(total).toBeGreaterThanOrEqual(made.length);
}, 90_000);

afterAll(async () => {
  await browser?.close();
});

const tenantRows = (page: Page) => page.getByRole('table', { name: 'Tenants' }).locator('tbody tr');

describe('sign-in', () => {
  it('a wrong key is refused and nothing is signed in', async () => {
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    await page.goto('/dashboard/');
    await expectAccessible(page, 'the sign-in page');
    await screenshot(page, '01-sign-in');
    await page.getByLabel('Platform key').fill('tpk_not-a-real-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByText('That platform key was not accepted.').isVisible()).toBe(true);
    expect(await page.getByLabel('Platform key').inputValue()).toBe('');
    expect(await context.cookies()).toEqual([]);
    await screenshot(page, '02-sign-in-refused');
    await context.close();
  });

  it('the right key signs in: a Secure HttpOnly SameSite=Strict cookie, the key in no storage and no URL; CSP on the page', async () => {
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    const urls = recordUrls(page);
    const response = await page.goto('/dashboard/');
    const headers = response!.headers();
    expect(headers['content-security-policy']).toContain("default-src 'self'");
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['content-security-policy']).toContain("base-uri 'none'");
    expect(headers['content-security-policy']).not.toContain('unsafe-inline');
    expect(headers['content-security-policy']).not.toContain('unsafe-eval');
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['referrer-policy']).toBe('no-referrer');

    await signIn(page, PLATFORM_KEY);
    await expect.poll(() => tenantRows(page).count()).toBe(total);

    const cookies = await context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: '__Host-tenantry_operator', httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    expect(cookies[0]!.value).not.toContain(PLATFORM_KEY);
    const storage = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie }));
    expect(storage).toBe(JSON.stringify({ local: {}, session: {}, cookie: '' }));
    expect(urls.length).toBeGreaterThan(2);
    for (const url of urls) expect(url).not.toContain(PLATFORM_KEY.slice(4));
    await context.close();
  });
});

describe('signed in', () => {
  let page: Page;
  let closeContext: () => Promise<void>;
  let urls: string[];

  beforeAll(async () => {
    const opened = await newPage(browser, stack.api.baseUrl);
    page = opened.page;
    closeContext = () => opened.context.close();
    urls = recordUrls(page);
    await signIn(page, PLATFORM_KEY);
  });
  afterAll(async () => {
    for (const url of urls) expect(url).not.toContain(PLATFORM_KEY.slice(4));
    // Metadata only: the dashboard never asks for a tenant's documents or files.
    expect(urls.filter((url) => /\/v1\/(collections|files)|\/trpc\/documents\./.test(url))).toEqual([]);
    expect(urls.some((url) => url.includes('/trpc/tenants.get'))).toBe(true);
    await closeContext();
  });

  it('lists the tenants: name, plan, status, created, storage used', async () => {
    await expect.poll(() => tenantRows(page).count()).toBe(total);
    const headers = await page.getByRole('table', { name: 'Tenants' }).locator('thead th').allTextContents();
    expect(headers).toEqual(['Name', 'Plan', 'Status', 'Created', 'Storage used']);
    const acme = tenantRows(page).filter({ hasText: 'Acme Rockets' });
    expect(await acme.locator('td').allTextContents()).toEqual(['Acme Rockets', 'pro', 'active', expect.any(String), '—']);
    await expectAccessible(page, 'the tenant list');
    await screenshot(page, '03-tenants');
  });

  it('search and the plan filter narrow the table; the URL keeps them across a reload', async () => {
    await page.getByRole('searchbox', { name: 'Search tenants' }).fill('acme');
    // (Both were created at once: their order in the list is not fixed.)
    await expect.poll(async () => (await tenantRows(page).locator('td:first-child').allTextContents()).sort()).toEqual(['Acme Foods', 'Acme Rockets']);
    await page.getByRole('combobox', { name: 'Plan' }).selectOption('free');
    await expect.poll(() => tenantRows(page).count()).toBe(1);
    expect(await tenantRows(page).first().textContent()).toContain('Acme Foods');
    const url = new URL(page.url());
    expect(Object.fromEntries(url.searchParams)).toEqual({ q: 'acme', plan: 'free' });

    await page.reload();
    await expect.poll(() => tenantRows(page).count()).toBe(1);
    expect(await tenantRows(page).first().textContent()).toContain('Acme Foods');
    expect(await page.getByRole('searchbox', { name: 'Search tenants' }).inputValue()).toBe('acme');
    expect(await page.getByRole('combobox', { name: 'Plan' }).inputValue()).toBe('free');

    await page.getByRole('combobox', { name: 'Plan' }).selectOption('enterprise');
    await expect.poll(() => page.getByText('No tenants match these filters.').isVisible()).toBe(true);
    await screenshot(page, '04-tenants-empty');
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await expect.poll(() => tenantRows(page).count()).toBe(total);
  });

  it("clicking a tenant's name opens its page, headed with its name", async () => {
    await page.getByRole('link', { name: 'Umbrella Health' }).click();
    await page.getByRole('heading', { name: 'Umbrella Health', level: 1 }).waitFor();
    expect(page.url()).toContain(`/dashboard/tenants/${tenants['umbrella-health']!.id}`);
    await page.getByRole('table', { name: 'Quota limits' }).waitFor();
    await page.getByRole('table', { name: 'Audit trail' }).waitFor();
    await expect.poll(() => page.getByText('yes', { exact: true }).isVisible()).toBe(true);
    await expectAccessible(page, 'the tenant page');
    await screenshot(page, '05-tenant');
  });

  it('Edit quotas saves a new limit, which the api then reports', async () => {
    const t = tenants['umbrella-health']!;
    await page.getByRole('button', { name: 'Edit quotas' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit quotas' });
    await dialog.waitFor();
    await expectAccessible(page, 'the Edit quotas dialog');
    await screenshot(page, '06-edit-quotas');

    await dialog.getByLabel('Members').fill('-3');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.getByText('Must be 0 or more.').waitFor();

    await dialog.getByLabel('Members').fill('1234');
    await dialog.getByLabel('Storage (MiB)').fill('2048');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    const billing = await stack.admin('GET', `/v1/tenants/${t.id}/billing-state`);
    expect(billing.body.effective.limits).toMatchObject({ members: 1234, storageBytes: 2048 * 1024 * 1024 });
    expect(billing.body.limits).toEqual({ members: 1234, storageBytes: 2048 * 1024 * 1024 });
    await expect.poll(() => page.getByRole('table', { name: 'Quota limits' }).getByRole('row', { name: /Members/ }).textContent()).toContain('1,234');
  });

  it('suspend with a reason, then unsuspend', async () => {
    const t = tenants['umbrella-health']!;
    await page.getByRole('button', { name: 'Suspend tenant', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Suspend tenant' });
    await dialog.getByLabel('Reason').fill('unpaid invoice');
    await dialog.getByRole('button', { name: 'Suspend' }).click();
    await page.getByRole('button', { name: 'Unsuspend tenant' }).waitFor();
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body).toMatchObject({ status: 'suspended', statusReason: 'unpaid invoice' });
    await expect.poll(() => page.getByRole('table', { name: 'Audit trail' }).textContent()).toContain('tenant.suspended');
    await screenshot(page, '07-tenant-suspended');

    await page.getByRole('button', { name: 'Unsuspend tenant' }).click();
    await page.getByRole('button', { name: 'Suspend tenant', exact: true }).waitFor();
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('active');
  });

  it('Delete tenant: a wrong slug deletes nothing; the slug typed → pending deletion', async () => {
    const t = tenants['umbrella-health']!;
    await page.getByRole('button', { name: 'Delete tenant' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete tenant' });
    await dialog.waitFor();
    await expectAccessible(page, 'the Delete tenant dialog');
    await dialog.getByLabel('Type the slug to confirm').fill('umbrella-healt');
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByText('nothing was deleted').waitFor();
    await screenshot(page, '08-delete-wrong-slug');
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('active');

    await dialog.getByLabel('Type the slug to confirm').fill(t.slug);
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Restore tenant' }).waitFor();
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('pending_deletion');

    await page.getByRole('button', { name: 'Restore tenant' }).click();
    await page.getByRole('button', { name: 'Delete tenant' }).waitFor();
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('active');
  });

  it('a cross-site style POST with the session cookie but without the CSRF token is refused 403 and changes nothing', async () => {
    const t = tenants['globex-labs']!;
    const [cookie] = await page.context().cookies();
    const asCookie = `${cookie!.name}=${cookie!.value}`;
    const forged = await request(stack.api.baseUrl, 'POST', `/v1/tenants/${t.id}/suspend`, {
      body: { reason: 'forged' },
      headers: { cookie: asCookie, origin: 'https://evil.example' },
    });
    expect([forged.status, forged.body.code]).toEqual([403, 'csrf_token_invalid']);
    const trpc = await fetch(`${stack.api.baseUrl}/trpc/tenants.suspend`, {
      method: 'POST',
      headers: { cookie: asCookie, 'content-type': 'application/json' },
      body: JSON.stringify({ id: t.id, reason: 'forged' }),
    });
    expect(trpc.status).toBe(403);
    const wrong = await request(stack.api.baseUrl, 'POST', `/v1/tenants/${t.id}/suspend`, {
      body: { reason: 'forged' },
      headers: { cookie: asCookie, 'x-csrf-token': 'A'.repeat(43) },
    });
    expect([wrong.status, wrong.body.code]).toEqual([403, 'csrf_token_invalid']);
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('active');
    // The cookie alone does read (reads are not state changes).
    expect((await request(stack.api.baseUrl, 'GET', `/v1/tenants/${t.id}`, { headers: { cookie: asCookie } })).status).toBe(200);
  });

  it('a real cross-site form POST, or link, from another site carries no session cookie', async () => {
    const t = tenants['globex-labs']!;
    const attacker = await page.context().newPage();
    await attacker.route('http://attacker.test/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<form method="POST" action="${stack.api.baseUrl}/trpc/tenants.suspend" enctype="text/plain"><input name='{"id":"${t.id}","reason":"csrf","x":"' value='"}'><button>go</button></form>
               <a href="${stack.api.baseUrl}/v1/tenants/${t.id}">look</a>`,
      }),
    );
    await attacker.goto('http://attacker.test/');
    const [post] = await Promise.all([attacker.waitForRequest((r) => r.url().includes('tenants.suspend')), attacker.getByRole('button', { name: 'go' }).click()]);
    expect((await post.allHeaders()).cookie).toBeUndefined();
    expect((await post.response())!.status()).toBeGreaterThanOrEqual(400);

    await attacker.goto('http://attacker.test/');
    const [get] = await Promise.all([attacker.waitForRequest((r) => r.url().endsWith(`/v1/tenants/${t.id}`)), attacker.getByRole('link', { name: 'look' }).click()]);
    expect((await get.allHeaders()).cookie).toBeUndefined();
    expect((await get.response())!.status()).toBe(401);
    await attacker.close();
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('active');
    // The same link followed from the dashboard's own site does send it.
    const own = await page.context().request.get(`/v1/tenants/${t.id}`);
    expect(own.status()).toBe(200);
  });
});

describe('sessions end', () => {
  it('sign out ends the session: back to sign-in, and the old cookie is refused', async () => {
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    await signIn(page, PLATFORM_KEY);
    const [cookie] = await context.cookies();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Platform key').waitFor();
    expect(await context.cookies()).toEqual([]);
    const replay = await request(stack.api.baseUrl, 'GET', '/v1/tenants', { headers: { cookie: `${cookie!.name}=${cookie!.value}` } });
    expect([replay.status, replay.body.code]).toEqual([401, 'session_expired']);
    const audit = await stack.admin('GET', '/v1/audit?limit=20');
    expect(audit.body.items.map((e: { action: string }) => e.action)).toContain('operator_session.ended');
    await context.close();
  });

  it('an expired session goes back to sign-in', async () => {
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    await signIn(page, PLATFORM_KEY);
    await sql`update operator_sessions set expires_at = now() - interval '1 second'`.execute(stack.database.db);
    await page.getByRole('link', { name: 'Globex Labs' }).click();
    await page.getByLabel('Platform key').waitFor();
    await screenshot(page, '09-session-expired');
    // Signing in again lands on the page the operator was going to.
    await page.getByLabel('Platform key').fill(PLATFORM_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Globex Labs', level: 1 }).waitFor();
    await context.close();
  });
});

describe('keyboard only', () => {
  /** Press Tab until the focused element matches, at most `max` times. */
  async function tabTo(page: Page, matches: (el: { tag: string; text: string; label: string | null }) => boolean, max = 40): Promise<void> {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      const el = await page.evaluate(() => {
        const a = document.activeElement as HTMLElement | null;
        return { tag: a?.tagName ?? '', text: (a?.textContent ?? '').trim(), label: a?.getAttribute('aria-label') ?? (a as HTMLInputElement | null)?.labels?.[0]?.textContent ?? null };
      });
      if (matches(el)) return;
    }
    throw new Error('the element was not reached with Tab');
  }
  const focusedText = (page: Page) => page.evaluate(() => (document.activeElement?.textContent ?? '').trim());

  it('sign in, search, open a tenant, open and escape a dialog, delete it by its slug: Tab, Enter, Escape and typing only', async () => {
    const t = tenants['initech-systems']!;
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    await page.goto('/dashboard/');
    await page.getByLabel('Platform key').waitFor();
    // The key field has focus on arrival.
    await page.keyboard.type(PLATFORM_KEY);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();

    await tabTo(page, (el) => el.label === 'Search tenants');
    await page.keyboard.type('initech');
    await expect.poll(() => tenantRows(page).count()).toBe(1);
    await tabTo(page, (el) => el.tag === 'A' && el.text === 'Initech Systems');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Initech Systems', level: 1 }).waitFor();

    await tabTo(page, (el) => el.text === 'Edit quotas');
    await page.keyboard.press('Enter');
    const quotas = page.getByRole('dialog', { name: 'Edit quotas' });
    await quotas.waitFor();
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).labels?.[0]?.textContent)).toBe('Storage (MiB)');
    // Focus stays in the dialog: many Tabs never reach the page behind it.
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => !!document.activeElement?.closest('dialog') || document.activeElement === document.body)).toBe(true);
    }
    await page.keyboard.press('Escape');
    await quotas.waitFor({ state: 'hidden' });
    expect(await focusedText(page)).toBe('Edit quotas');

    await tabTo(page, (el) => el.text === 'Delete tenant', 60);
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: 'Delete tenant' }).waitFor();
    await page.keyboard.type(t.slug);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Restore tenant' }).waitFor();
    expect((await stack.admin('GET', `/v1/tenants/${t.id}`)).body.status).toBe('pending_deletion');
    expect(fromPublicId('ten', t.id)).not.toBeNull();
    await context.close();
  });
});
