import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultFakeReply, startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

/**
 * The dashboard as a person uses it: a real server on a loopback port (with the queue workers),
 * Debian's Chromium driven by playwright-core. No browser is downloaded; without Chromium this
 * file fails, it is not skipped.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const QUEUES = ['intent-classification', 'security-classification', 'rag-processing', 'rocketreach-api', 'openai-processing'];

let fake: FakeOpenAiServer | undefined;
let t: TestApp | undefined;
let browser: Browser | undefined;
let base: string;
/** A system operator (admin of its organization). */
let acme: Tenant;
let member: Tenant;
/** An organization admin who is not an operator. */
let globex: Tenant;
const contexts: BrowserContext[] = [];
/** Requests a page tried to send anywhere but our server (aborted), per context. */
const outside = new Map<BrowserContext, string[]>();
/** Uncaught exceptions, console errors and CSP violations, per page. */
const problems = new Map<Page, string[]>();

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. The browser tests drive Debian's Chromium: install the \`chromium\` package ` +
        '(apt-get update && apt-get install -y chromium; .ci/run does this) or set CHROMIUM_PATH.',
    );
  }
  fake = await startFakeOpenAi();
  // The alert evaluator is off in this process so that the alert the test raises stays as it is.
  t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, OPENAI_MODEL: 'gpt-4o-mini', ALERTS_INTERVAL_MS: '0' }, { workers: true });
  base = await t.app.listen({ port: 0, host: '127.0.0.1' });
  acme = await t.tenant('Acme Browser', 'ops@acme-browser.test', { operator: true });
  globex = await t.tenant('Globex Browser', 'admin@globex-browser.test');
  const tenancy = t.container.repositories.tenancy;
  const user = await tenancy.upsertUser('member@acme-browser.test');
  await tenancy.setMembership(acme.orgId, user.id, 'member');
  const { token } = await tenancy.createToken(user.id, 'browser member');
  member = { orgId: acme.orgId, userId: user.id, token, headers: { authorization: `Bearer ${token}`, 'x-organization-id': acme.orgId } };
  await eventually(async () => t!.container.producer.available(), 10_000, 'Redis');
  // launch() gives the browser a fresh profile (--user-data-dir in a new temporary folder, removed on close).
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}, 60_000);

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await t?.close();
  await fake?.close();
}, 60_000);

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser!.newContext({ viewport: { width: 1400, height: 1000 }, locale: 'en-GB', timezoneId: 'UTC' });
  contexts.push(context);
  outside.set(context, []);
  // Nothing leaves the machine: anything not for our server is recorded and aborted.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base) || url.startsWith('data:')) return route.continue();
    outside.get(context)!.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  problems.set(page, []);
  page.on('pageerror', (error) => problems.get(page)!.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of (401|403)/.test(message.text())) problems.get(page)!.push(`console: ${message.text()}`);
  });
  return { context, page };
}

async function signIn(page: Page, tenant: Tenant): Promise<void> {
  await page.goto(`${base}/dashboard`);
  await page.getByLabel('API token').fill(tenant.token);
  await page.getByLabel('Organization id').fill(tenant.orgId);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#board').waitFor({ state: 'visible' });
}

function queueCard(page: Page, name: string) {
  return page.locator(`article.queue[data-queue="${name}"]`);
}

describe('the dashboard in a browser', () => {
  let admin: { context: BrowserContext; page: Page };

  it('loads, signs in with a token and shows health and the five queues', async () => {
    admin = await newPage();
    const { page } = admin;
    const response = await page.goto(`${base}/dashboard`);
    expect(response?.status()).toBe(200);
    await expect(page.title()).resolves.toContain('operations dashboard');
    await expect(page.getByRole('heading', { name: 'Sign in' }).isVisible()).resolves.toBe(true);
    await expect(page.locator('#board').isVisible()).resolves.toBe(false);

    // A wrong token is an error shown on the form, not a silent failure.
    await page.getByLabel('API token').fill('hj_wrong');
    await page.getByLabel('Organization id').fill(acme.orgId);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error').filter({ hasText: /GET \/api\/v1\/me failed: 401 unauthorized/ }).waitFor();

    await signIn(page, acme);
    for (const name of QUEUES) await queueCard(page, name).waitFor();
    await expect(page.locator('article.queue').count()).resolves.toBe(5);
    // Counts and concurrency come from /system/queue-status.
    await page.locator(`article.queue[data-queue="rag-processing"] .concurrency .figures`).filter({ hasText: /\d+ now · min \d+ · max \d+/ }).waitFor();
    await page.locator('#health-status').filter({ hasText: /Overall: .*(Healthy|Degraded)/ }).waitFor();
    await expect(page.locator('#health-checks li').allTextContents()).resolves.toEqual([
      expect.stringMatching(/^PostgreSQL.*Healthy \d+ ms/),
      expect.stringMatching(/^Redis.*Healthy \d+ ms/),
      expect.stringMatching(/^Workers/),
    ]);
    // The token never appears in a URL, and it is kept in this tab's sessionStorage.
    expect(page.url()).not.toContain(acme.token);
    await expect(page.evaluate("sessionStorage.getItem('honeyjar.token')")).resolves.toBe(acme.token);
    await expect(page.getByRole('link', { name: 'Bull Board' }).isVisible()).resolves.toBe(true);
    await expect(page.locator('#whoami').textContent()).resolves.toContain('admin · system operator');
    // Its own organization's figures too.
    await page.locator('#org-runs').filter({ hasText: /Runs accepted in the last hour: \d+/ }).waitFor();
  });

  it('sends a queued message from the chat panel and shows each stage completing, and a failure in the failed jobs', async () => {
    const { page } = admin;
    // The first reply fails for good (the provider rejects the key): a failed job to show.
    fake!.failNext(401);
    await page.getByLabel(/^Message/).fill('Draft a short statement about the delayed launch');
    await page.getByRole('button', { name: 'Send queued message' }).click();
    await page.locator('#chat-batch').filter({ hasText: /: failed, 4 of 5 stages completed/ }).waitFor({ timeout: 20_000 });
    await expect(page.locator('#chat-stages li[data-stage="openai"]').getAttribute('data-status')).resolves.toBe('failed');
    await expect(page.locator('[data-error-for="chat"]').textContent()).resolves.toContain('invalid_api_key');
    const failedRow = page.locator('#failed-table tbody tr').filter({ hasText: 'invalid_api_key' });
    await failedRow.waitFor({ timeout: 10_000 });
    await expect(failedRow.textContent()).resolves.toMatch(/openai.*openai-processing.*invalid_api_key.*1 of 4/);

    await page.getByRole('button', { name: 'Send queued message' }).click();
    await page.locator('#chat-batch').filter({ hasText: /: completed, 5 of 5 stages completed/ }).waitFor({ timeout: 20_000 });
    await expect(page.locator('#chat-stages li').evaluateAll((items) => items.map((li) => `${li.getAttribute('data-stage')}:${li.getAttribute('data-status')}`))).resolves.toEqual([
      'intent:completed',
      'security:completed',
      'rag:completed',
      'rocketreach:completed',
      'openai:completed',
    ]);
    await expect(page.locator('#chat-reply').isVisible()).resolves.toBe(true);
    // The per-minute throughput (from /system/metrics) now counts these steps.
    await queueCard(page, 'openai-processing')
      .locator('.throughput svg[aria-label*="1 completed, 1 failed"]')
      .waitFor({ timeout: 15_000 });
  });

  it('streams the stages and the reply into the chat panel as they arrive, without the token in any URL', async () => {
    const { page } = admin;
    const reply = Array.from({ length: 24 }, (_, i) => `streamed${i}`).join(' ');
    fake!.setReply(() => reply);
    fake!.setStreaming({ firstTokenMs: 50, tokenIntervalMs: 60 });
    const urls: string[] = [];
    page.on('request', (request) => urls.push(request.url()));
    try {
      await page.getByLabel(/^Message/).fill('Draft a statement, streamed');
      await page.getByRole('button', { name: 'Send queued message' }).click();
      // Part of the reply is shown while the LLM stage is still running.
      await expect
        .poll(
          async () => {
            const text = (await page.locator('#chat-reply').textContent()) ?? '';
            const llm = await page.locator('#chat-stages li[data-stage="openai"]').getAttribute('data-status');
            return text.startsWith('streamed0') && text.includes('streamed2') && !text.includes('streamed23') && llm === 'active';
          },
          { timeout: 20_000, interval: 20 },
        )
        .toBe(true);
      await expect(page.locator('#chat-stages li[data-stage="intent"]').getAttribute('data-status')).resolves.toBe('completed');
      await page.locator('#chat-batch').filter({ hasText: /: completed, 5 of 5 stages completed/ }).waitFor({ timeout: 20_000 });
      await expect(page.locator('#chat-reply').textContent()).resolves.toBe(reply);
      expect(urls.some((url) => url.includes('/events?ticket=hjst_'))).toBe(true);
      expect(urls.filter((url) => url.includes(acme.token))).toEqual([]);
    } finally {
      fake!.setStreaming({});
      fake!.setReply(defaultFakeReply);
    }
  });

  it('shows an alert raised by the test and acknowledges it with a click', async () => {
    const { page } = admin;
    const alerts = t!.container.repositories.alerts;
    const { alert } = await alerts.raise({
      rule: 'queue_backlog',
      subject: 'rag-processing',
      severity: 'warning',
      value: 1523,
      threshold: 1000,
      message: 'rag-processing has 1523 jobs waiting or delayed (threshold 1000)',
    });
    // A second one stays unacknowledged (and shows in the screenshot as such).
    await alerts.raise({
      rule: 'stage_p95_processing_time',
      subject: 'openai-processing',
      severity: 'critical',
      value: 41_200,
      threshold: 30_000,
      message: 'openai p95 processing time 41.2 s over the last 5 min (threshold 30 s)',
    });
    const row = page.locator(`#alerts-table tr[data-alert-id="${alert.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    await expect(row.textContent()).resolves.toContain('rag-processing has 1523 jobs waiting');
    await row.getByRole('button', { name: 'Acknowledge' }).click();
    await row.getByText(/Acknowledged by you at/).waitFor();
    await expect(row.getByRole('button', { name: 'Acknowledge' }).count()).resolves.toBe(0);

    const res = await t!.as(acme, { method: 'GET', url: '/api/v1/chat/system/alerts?status=open' });
    const listed = res.json().alerts.find((a: { id: string }) => a.id === alert.id);
    expect(listed).toMatchObject({ acknowledged: true, acknowledgedBy: acme.userId, acknowledgedAt: expect.any(String) });
    await expect(page.locator('#alerts-count').textContent()).resolves.toContain('2 open, 1 unacknowledged');
  });

  it('charts a backlog and writes a screenshot of the signed-in dashboard', async () => {
    const { page } = admin;
    // A burst of messages against a slow provider: the LLM queue backs up, and the chart shows it.
    // (One thread each: replies within a thread are produced one after the other.)
    fake!.setLatency(2_000);
    const batches: string[] = [];
    for (let i = 0; i < 15; i++) {
      const threadId = (await t!.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: `burst ${i}` } })).json().id;
      const res = await t!.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: `Burst message ${i}` } });
      batches.push(res.json().data.tracking.batchId);
    }
    const openaiDepth = queueCard(page, 'openai-processing').locator('.depth svg');
    await expect
      .poll(async () => {
        const label = (await openaiDepth.getAttribute('aria-label')) ?? '';
        return Number(/waiting (\d+)/.exec(label)?.[1] ?? 0) + Number(/active (\d+)/.exec(label)?.[1] ?? 0);
      }, { timeout: 15_000 })
      .toBeGreaterThan(0);
    await page.waitForTimeout(4_000);
    await mkdir(RESULTS, { recursive: true });
    await page.screenshot({ path: `${RESULTS}dashboard.png`, fullPage: true });
    expect(existsSync(`${RESULTS}dashboard.png`)).toBe(true);
    fake!.setLatency(0);
    await eventually(async () => {
      const docs = await Promise.all(batches.map((id) => t!.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${id}/results` }).then((r) => r.json())));
      return docs.every((doc) => doc.finishedAt);
    }, 30_000, 'the burst to finish');
    // The page used nothing but this server, and ran without script errors or CSP violations.
    expect(outside.get(admin.context)).toEqual([]);
    expect(problems.get(page)).toEqual([]);
  });

  it('opens Bull Board for an operator from the dashboard link, and pauses a queue from its own page', async () => {
    const { page } = admin;
    await page.getByRole('link', { name: 'Bull Board' }).click();
    await page.waitForURL(`${base}/admin/queues`);
    await expect(page.title()).resolves.toBe('honeyjar queues');
    // Bull Board's own UI rendered the queues it read from its API (with the session cookie).
    await page.getByText('rag-processing').first().waitFor({ timeout: 15_000 });
    // …and its overview: a card per queue with its job count.
    await page.getByText(/^\d+ Jobs?$/).nth(4).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: `${RESULTS}bull-board.png` });
    const cookies = await admin.context.cookies(`${base}/admin/queues`);
    const session = cookies.find((c) => c.name === 'hj_admin_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });
    expect(session!.value).not.toContain(acme.token);
    const csrf = cookies.find((c) => c.name === 'XSRF-TOKEN');
    expect(csrf).toMatchObject({ httpOnly: false, sameSite: 'Strict', path: '/admin' });

    // A change made through Bull Board's own UI carries the CSRF token its client read from the cookie.
    const queue = t!.container.producer.queues.rag;
    const sent: Array<Record<string, string>> = [];
    page.on('request', (request) => {
      if (request.method() === 'PUT' && request.url().endsWith('/api/queues/rag-processing/pause')) sent.push(request.headers());
    });
    await page.goto(`${base}/admin/queues/queue/rag-processing`);
    const triggers = page.locator('button[aria-haspopup="menu"]');
    await triggers.first().waitFor();
    for (let i = 0; i < (await triggers.count()); i++) {
      await triggers.nth(i).click();
      const opened = await page.getByRole('menuitem', { name: 'Pause', exact: true }).waitFor({ timeout: 1_000 }).then(() => true, () => false);
      if (opened) break;
      await page.keyboard.press('Escape');
    }
    await page.getByRole('menuitem', { name: 'Pause', exact: true }).click();
    await page.getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(() => queue.isPaused(), { timeout: 10_000 }).toBe(true);
    expect(sent).toHaveLength(1);
    expect(sent[0]!['x-xsrf-token']).toBe(csrf!.value);
    await queue.resume();
  });

  it("shows an organization admin (not an operator) its organization's figures only", async () => {
    const { page } = await newPage();
    await signIn(page, globex);
    await expect(page.locator('#whoami').textContent()).resolves.toBe(`Organization ${globex.orgId.slice(0, 8)}… · admin`);
    await page.locator('#org-table tbody tr[data-stage="openai"]').waitFor();
    await expect(page.locator('#org-table tbody tr').count()).resolves.toBe(5);
    await expect(page.locator('#queues').isVisible()).resolves.toBe(false);
    await expect(page.locator('#health-detail').isVisible()).resolves.toBe(false);
    await expect(page.getByRole('link', { name: 'Bull Board' }).isVisible()).resolves.toBe(false);
    // Alerts are listed, but only operators acknowledge them.
    await page.locator('#alerts-table tbody tr').first().waitFor();
    await expect(page.getByRole('button', { name: 'Acknowledge' }).count()).resolves.toBe(0);
    await expect(page.locator('#alerts-table').textContent()).resolves.toContain('system operators acknowledge alerts');
    expect(problems.get(page)).toEqual([]);
  });

  it('keeps a member out of Bull Board', async () => {
    const { context, page } = await newPage();
    await signIn(page, member);
    await page.locator('#org-table tbody tr[data-stage="intent"]').waitFor();
    await expect(page.locator('article.queue').count()).resolves.toBe(0);
    await expect(page.locator('#whoami').textContent()).resolves.toContain('member');
    await expect(page.getByRole('link', { name: 'Bull Board' }).isVisible()).resolves.toBe(false);
    await expect(page.locator('#alerts-admin-only').isVisible()).resolves.toBe(true);

    await page.goto(`${base}/admin/queues`);
    await page.waitForURL(`${base}/dashboard`);
    await page.locator('#notice').filter({ hasText: 'Bull Board needs a sign-in as a system operator' }).waitFor();
    expect(await context.cookies(`${base}/admin/queues`)).toEqual([]);
    const api = await context.request.get(`${base}/admin/queues/api/queues`);
    expect(api.status()).toBe(401);
    // A session of the member's own (the page opens none for it) is not a way in either.
    const direct = await context.request.post(`${base}/dashboard/session`, { data: { token: member.token, orgId: member.orgId } });
    expect(direct.status()).toBe(201);
    const board = await context.request.get(`${base}/admin/queues/api/queues`);
    expect(board.status()).toBe(403);
    expect((await board.json()).error.code).toBe('operator_required');
    expect(problems.get(page)).toEqual([]);
  });

  it('signs out on a 401 (the token was revoked) and says why', async () => {
    const { page } = await newPage();
    const extra = await t!.container.repositories.tenancy.createToken(acme.userId, 'to revoke');
    await signIn(page, { ...acme, token: extra.token });
    await queueCard(page, 'rag-processing').waitFor();
    await t!.container.repositories.tenancy.revokeToken(extra.id);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 10_000 });
    await expect(page.locator('#notice').textContent()).resolves.toMatch(/Signed out: .*401 \(unauthorized/);
    await expect(page.evaluate("sessionStorage.getItem('honeyjar.token')")).resolves.toBeNull();
  });
});
