/// <reference lib="dom" />
// (page.evaluate callbacks run in the browser)
import { readFile } from 'node:fs/promises';
import { fromPublicId } from '@tenantry/domain';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_KEY } from '../support/apps.js';
import { request, waitFor } from '../support/http.js';
import { useStack } from '../support/stack.js';
import { expectAccessible, launchChromium, newPage, screenshot, signIn } from './browser.js';

/**
 * The tenant page's usage, charts and invoices, and the pricing calculator, in a real
 * Chromium against a real api and worker: real tenant traffic metered by the api, a real
 * month close, real downloads through the session cookie.
 */
const stack = useStack({
  // Counts reach Postgres within a quarter second; the schedules that would only add noise wait.
  api: { USAGE_FLUSH_INTERVAL_MS: '250' },
  // Storage is sampled when the test says (stack.worker.sampleUsage), not on a schedule.
  workerEnv: { BILLING_CLOSE_INTERVAL_MS: '3600000', HEALTH_PROBE_INTERVAL_MS: '3600000', USAGE_SAMPLE_INTERVAL_MS: '3600000' },
});
let browser: Browser;
let tenant: { tenantId: string; token: string; name: string };

const CLOSED_MONTH = '2026-03';
const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const money = (minor: number) => usd.format(minor / 100);

/** As the dashboard writes sizes (apps/dashboard/src/ui/format.ts). */
function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

beforeAll(async () => {
  browser = await launchChromium();
  const signedUp = await stack.signUpTenant({ orgName: 'Stark Industries' });
  tenant = { ...signedUp, name: 'Stark Industries' };
  expect((await stack.admin('PATCH', `/v1/tenants/${tenant.tenantId}`, { body: { plan: 'pro' } })).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

/** The chart named `name`, and the text summary that describes it. */
function chart(page: Page, name: string) {
  const img = page.getByRole('img', { name, exact: true });
  return {
    img,
    summary: () => img.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby') ?? '')?.textContent ?? ''),
  };
}

async function openTenant(page: Page): Promise<void> {
  await page.goto(`/dashboard/tenants/${tenant.tenantId}`);
  await page.getByRole('heading', { name: tenant.name, level: 1 }).waitFor();
}

describe('tenant page: usage and charts', () => {
  let page: Page;
  let close: () => Promise<void>;
  beforeAll(async () => {
    const opened = await newPage(browser, stack.api.baseUrl);
    page = opened.page;
    close = () => opened.context.close();
    await signIn(page, PLATFORM_KEY);
  });
  afterAll(() => close());

  it('before any traffic the charts are empty states, each a named image with a text summary', async () => {
    await openTenant(page);
    for (const name of ['API requests over time', 'Storage over time', 'Realtime connections over time']) {
      await chart(page, name).img.waitFor();
    }
    const requests = chart(page, 'API requests over time');
    expect(await requests.summary()).toBe('API requests, last 24 hours: no data.');
    expect(await requests.img.textContent()).toBe('Nothing recorded in this range yet.');
    expect(await requests.img.locator('canvas').count()).toBe(0);
    await page.getByRole('table', { name: 'Usage this month' }).waitFor();
    await expectAccessible(page, 'the tenant page with empty charts');
    await screenshot(page, '10-tenant-usage-empty');
  });

  it("the list's Storage used is the tenant's latest storage sample, and — before the first", async () => {
    const storageCell = async () => {
      await page.goto(`/dashboard/?q=${encodeURIComponent('stark industries')}`);
      const row = page.getByRole('table', { name: 'Tenants' }).locator('tbody tr').filter({ hasText: tenant.name });
      await row.waitFor();
      return (await row.locator('td').last().textContent())!;
    };
    const listed = async () => (await stack.admin('GET', '/v1/tenants?search=stark')).body.items[0].storageBytes as number | null;
    expect(await listed()).toBeNull();
    expect(await storageCell()).toBe('—');

    expect((await stack.worker!.sampleUsage()).sampled).toBeGreaterThan(0);
    const bytes = (await listed())!;
    expect(bytes).toBeGreaterThan(0);
    expect(await storageCell()).toBe(formatBytes(bytes));
    await screenshot(page, '16-tenants-storage-used');
  });

  it('after real tenant traffic, the API requests chart draws its points and its summary gives the total the api metered', async () => {
    const calls = 37;
    for (let i = 0; i < calls; i++) {
      const res = await request(stack.api.baseUrl, 'GET', '/v1/me', { token: tenant.token });
      expect(res.status).toBe(200);
    }
    // Wait for the api's flush into the hourly rollups, as read back by the series API.
    const hour = 3_600_000;
    const to = new Date(Math.floor(Date.now() / hour) * hour + hour).toISOString();
    const from = new Date(Date.parse(to) - 24 * hour).toISOString();
    const total = await waitFor(async () => {
      const res = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/usage/series?meter=apiRequests&interval=hour&from=${from}&to=${to}`);
      const sum = (res.body.points as Array<{ value: number }>).reduce((s, p) => s + p.value, 0);
      return sum >= calls ? sum : undefined;
    }, 15_000);

    // And the storage sample (taken in the test above) is a point of the storage chart.
    const storagePeak = (await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/usage/series?meter=storageBytes&interval=hour&from=${from}&to=${to}`)).body.points.reduce(
      (max: number, p: { peak: number }) => Math.max(max, p.peak),
      0,
    );
    expect(storagePeak).toBeGreaterThan(0);

    await openTenant(page);
    const requests = chart(page, 'API requests over time');
    await requests.img.locator('canvas').first().waitFor();
    const summary = await requests.summary();
    expect(summary).toMatch(new RegExp(`^API requests, last 24 hours: ${total.toLocaleString('en-US')} total, peak \\d[\\d,]* at .+\\.$`));
    expect(Number(await requests.img.getAttribute('data-points'))).toBeGreaterThanOrEqual(1);
    // This month's usage shows the same count, with its asOf.
    const usage = page.getByRole('table', { name: 'Usage this month' });
    await expect.poll(() => usage.getByRole('row', { name: /API requests/ }).textContent()).toContain(total.toLocaleString('en-US'));
    expect(await page.getByText(/as of/).textContent()).toMatch(/\(UTC\), as of .+/);
    const storage = chart(page, 'Storage over time');
    await storage.img.locator('canvas').first().waitFor();
    expect(await storage.summary()).toMatch(new RegExp(`^Storage, last 24 hours: peak ${formatBytes(storagePeak).replace('.', '\\.')} at .+, latest .+\\.$`));
    await expectAccessible(page, 'the tenant page with charts');
    await screenshot(page, '11-tenant-charts-hourly');

    await page.getByRole('button', { name: 'Last 30 days' }).click();
    await expect.poll(() => requests.summary()).toMatch(new RegExp(`^API requests, last 30 days: ${total.toLocaleString('en-US')} total`));
    expect(await page.getByRole('button', { name: 'Last 30 days' }).getAttribute('aria-pressed')).toBe('true');
    await requests.img.locator('canvas').first().waitFor();
    await screenshot(page, '12-tenant-charts-daily');
  });
});

describe('tenant page: invoices', () => {
  let page: Page;
  let close: () => Promise<void>;
  let number: string;
  beforeAll(async () => {
    // The tenant was on pro since March (as if it had signed up then), and March is closed.
    await stack.database.db
      .insertInto('tenant_billing_history')
      .values({ tenant_id: fromPublicId('ten', tenant.tenantId)!, at: new Date(`${CLOSED_MONTH}-01T00:00:00Z`), status: 'active', plan: 'pro', plan_version: 1 })
      .execute();
    const closed = await stack.admin('POST', '/v1/billing/close', { body: { month: CLOSED_MONTH } });
    expect(closed.status, JSON.stringify(closed.body)).toBe(200);
    expect(closed.body).toMatchObject({ created: 1, failed: [] });
    const list = await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/invoices`);
    number = list.body.items[0].number;

    const opened = await newPage(browser, stack.api.baseUrl);
    page = opened.page;
    close = () => opened.context.close();
    await signIn(page, PLATFORM_KEY);
  });
  afterAll(() => close());

  it('lists the closed invoice; its PDF link downloads a PDF through the session cookie', async () => {
    await openTenant(page);
    const row = page.getByRole('table', { name: 'Invoices' }).getByRole('row', { name: new RegExp(number) });
    await row.waitFor();
    expect(await row.textContent()).toContain(CLOSED_MONTH);
    expect(await row.textContent()).toContain(money(2_500));

    const link = row.getByRole('link', { name: `Download ${number} as PDF` });
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    expect(download.suggestedFilename()).toBe(`invoice-${number}.pdf`);
    const bytes = await readFile((await download.path())!);
    expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(bytes.length).toBeGreaterThan(500);

    // The same link, fetched with this browser's cookies (and nothing else): the file and its type.
    const href = (await link.getAttribute('href'))!;
    const viaCookie = await page.context().request.get(href);
    expect(viaCookie.status()).toBe(200);
    expect(viaCookie.headers()['content-type']).toBe('application/pdf');
    expect(viaCookie.headers()['content-disposition']).toMatch(/^attachment/);
    expect(Buffer.from(await viaCookie.body()).equals(bytes)).toBe(true);
    // Without the session the link is refused.
    expect((await request(stack.api.baseUrl, 'GET', href)).status).toBe(401);

    for (const [label, type] of [
      ['CSV', 'text/csv'],
      ['JSON', 'application/json'],
    ] as const) {
      const other = await page.context().request.get((await row.getByRole('link', { name: `Download ${number} as ${label}` }).getAttribute('href'))!);
      expect(other.status(), label).toBe(200);
      expect(other.headers()['content-type'], label).toContain(type);
    }
  });

  it('shows the upcoming draft: the lines and total the api computes for this month', async () => {
    await openTenant(page);
    const table = page.getByRole('table', { name: 'Upcoming invoice lines' });
    await table.waitFor();
    const upcoming = (await stack.admin('GET', `/v1/tenants/${tenant.tenantId}/invoices/upcoming`)).body;
    expect(upcoming.status).toBe('draft');
    expect(upcoming.lines.length).toBeGreaterThan(0);
    const shown = await table.locator('tbody th').allTextContents();
    expect(shown).toEqual(upcoming.lines.map((l: { description: string }) => l.description));
    expect(await table.locator('tfoot').getByRole('row', { name: /Total/ }).textContent()).toContain(money(upcoming.totalMinor));
    await expectAccessible(page, 'the tenant page with invoices');
    await screenshot(page, '13-tenant-invoices');
  });
});

describe('pricing calculator', () => {
  it('is linked from the navigation; refuses a negative quantity; estimates what the api prices', async () => {
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    await signIn(page, PLATFORM_KEY);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Pricing' }).click();
    await page.getByRole('heading', { name: 'Pricing calculator', level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/dashboard/pricing');
    await expectAccessible(page, 'the pricing page');
    await screenshot(page, '14-pricing');

    const estimates: string[] = [];
    page.on('request', (r) => r.url().includes('pricing.estimate') && estimates.push(r.url()));
    await page.getByLabel('API requests in the month').fill('-5');
    await page.getByRole('button', { name: 'Estimate' }).click();
    await page.getByText('Must be 0 or more.').waitFor();
    expect(estimates).toEqual([]);

    await page.getByRole('combobox', { name: 'Plan' }).selectOption('pro');
    await page.getByLabel('API requests in the month').fill('3000000');
    await page.getByLabel('Egress (GiB)').fill('60');
    await page.getByLabel('Database storage, average (GiB)').fill('10.5');
    await page.getByRole('button', { name: 'Estimate' }).click();
    const table = page.getByRole('table', { name: 'Estimated invoice lines' });
    await table.waitFor();

    const expected = await request(stack.api.baseUrl, 'POST', '/v1/pricing/estimate', {
      body: { plan: 'pro', usage: { apiRequests: 3_000_000, egressBytes: 60 * 2 ** 30, storageBytes: Math.round(10.5 * 2 ** 30) } },
    });
    expect(expected.status).toBe(200);
    expect(expected.body.totalMinor).toBeGreaterThan(2_500);
    expect(await table.locator('tbody th').allTextContents()).toEqual(expected.body.lines.map((l: { description: string }) => l.description));
    expect(await table.locator('tfoot').getByRole('row', { name: /Total/ }).textContent()).toContain(money(expected.body.totalMinor));
    await expectAccessible(page, 'the pricing page with an estimate');
    await screenshot(page, '15-pricing-estimate');
    await context.close();
  });
});

describe('keyboard only', () => {
  async function tabTo(page: Page, matches: (el: { text: string; label: string | null }) => boolean, max = 80): Promise<void> {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      const el = await page.evaluate(() => {
        const a = document.activeElement as HTMLElement | null;
        return { text: (a?.textContent ?? '').trim(), label: a?.getAttribute('aria-label') ?? (a as HTMLInputElement | null)?.labels?.[0]?.textContent ?? null };
      });
      if (matches(el)) return;
    }
    throw new Error('the element was not reached with Tab');
  }

  it('the chart range, the invoice downloads and the pricing calculator: Tab, Enter and typing only', async () => {
    const { context, page } = await newPage(browser, stack.api.baseUrl);
    await signIn(page, PLATFORM_KEY);
    await openTenant(page);
    await page.getByRole('table', { name: 'Invoices' }).waitFor();
    await page.locator('body').focus();

    await tabTo(page, (el) => el.text === 'Last 30 days');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('button', { name: 'Last 30 days' }).getAttribute('aria-pressed')).toBe('true');

    await tabTo(page, (el) => el.label?.startsWith('Download ') === true && el.label.endsWith(' as PDF'));
    const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    const bytes = await readFile((await download.path())!);
    expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');

    // Back to the top, then the navigation's Pricing link.
    await page.goto('/dashboard/');
    await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
    await tabTo(page, (el) => el.text === 'Pricing');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Pricing calculator', level: 1 }).waitFor();
    await tabTo(page, (el) => el.label === 'API requests in the month');
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('2000000');
    await page.keyboard.press('Enter');
    await page.getByRole('table', { name: 'Estimated invoice lines' }).waitFor();
    await context.close();
  });
});
