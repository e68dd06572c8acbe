import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpStats } from '../../src/domain/monitoring/http-stats.js';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

const METRICS_TOKEN = 'test-metrics-token-0123456789';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

let fake: FakeOpenAiServer;
let t: TestApp;
let acme: Tenant;
let globex: Tenant;
/** A system operator (of its own organization): sees this process's HTTP and provider figures. */
let ops: Tenant;
const batches: Record<string, string> = {};

async function sendQueued(content: string, tenant: Tenant = acme): Promise<string> {
  const threadId = (await t.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: {} })).json().id;
  const res = await t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
  expect(res.statusCode).toBe(202);
  return res.json().data.tracking.batchId;
}

function finished(batchId: string, tenant: Tenant = acme) {
  return eventually(async () => {
    const doc = (await t.as(tenant, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
    return doc.finishedAt ? doc : undefined;
  }, 20_000, `batch ${batchId} to finish`);
}

/** A scrape with the given bearer token (the configured one by default; null: none). */
function scrape(token: string | null = METRICS_TOKEN) {
  return t.app.inject({ method: 'GET', url: '/metrics', headers: token === null ? {} : { authorization: `Bearer ${token}` } });
}

/** The exposition lines of one metric (name followed by `{` or a space). */
function lines(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

beforeAll(async () => {
  fake = await startFakeOpenAi();
  t = await createTestApp(
    { OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, OPENAI_MODEL: 'gpt-4o-mini', METRICS_TOKEN },
    { workers: true },
  );
  acme = await t.tenant('Metrics Acme');
  globex = await t.tenant('Metrics Globex');
  ops = await t.tenant('Metrics Operations', 'ops@metrics-operations.test', { operator: true });

  // Three plain replies, one after a 429 (Retry-After 1 s), one after a 500 (a retry), one failing for good (401).
  for (const content of ['What is a media kit?', 'Draft a tweet about our launch', 'Who approves statements?']) {
    batches[content] = await sendQueued(content);
    await finished(batches[content]!);
  }
  fake.failNext(429, { headers: { 'retry-after': '1' } });
  batches.rateLimited = await sendQueued('How long should a pitch be?');
  expect((await finished(batches.rateLimited)).status).toBe('completed');
  fake.failNext(500);
  batches.retried = await sendQueued('Summarise our press coverage');
  expect((await finished(batches.retried)).status).toBe('completed');
  fake.failNext(401);
  batches.failed = await sendQueued('Write a holding statement');
  expect((await finished(batches.failed)).status).toBe('failed');
  // Requests with ids in their URL, and one that matches no route.
  await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batches.failed}/results` });
  await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${crypto.randomUUID()}` });
  await t.as(acme, { method: 'GET', url: `/api/v1/nowhere/${crypto.randomUUID()}` });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await fake?.close();
});

describe('the per-minute request ring (pure)', () => {
  it('estimates percentiles within a bucket and forgets minutes outside the range', () => {
    let now = Date.UTC(2025, 0, 1, 12, 0, 30);
    const stats = createHttpStats({ now: () => now });
    for (let ms = 1; ms <= 100; ms++) stats.record('GET', '/x/:id', ms === 100 ? 503 : 200, ms);
    const summary = stats.summary(5);
    const [route] = summary.routes;
    expect(route).toMatchObject({ route: 'GET /x/:id', requests: 100, serverErrors: 1, errorRate: 0.01 });
    expect(route!.latencyMs.p50! / 50).toBeGreaterThan(0.9);
    expect(route!.latencyMs.p50! / 50).toBeLessThan(1.1);
    expect(route!.latencyMs.p99! / 99).toBeGreaterThan(0.9);
    expect(route!.latencyMs.p99).toBeLessThanOrEqual(100);
    expect(route!.latencyMs.max).toBe(100);
    // Ten minutes later the 5-minute view is empty, the 15-minute one still has them.
    now += 10 * 60_000;
    stats.record('GET', '/y', 200, 2);
    expect(stats.summary(5).routes.map((r) => r.route)).toEqual(['GET /y']);
    expect(stats.summary(15).totals.requests).toBe(101);
    // After 24 h the slot is reused: nothing older than a day is kept.
    now += 24 * 60 * 60_000;
    expect(stats.summary(24 * 60).totals.requests).toBe(0);
  });
});

describe('JSON metrics', () => {
  it('reports per-route requests, latency percentiles and error rates as this process saw them, to operators only', async () => {
    // Every tenant's traffic: an organization admin does not get it.
    const admin = (await t.as(acme, { method: 'GET', url: '/api/v1/chat/system/metrics?timeRange=15m' })).json();
    expect(admin.http).toBeUndefined();
    expect(admin.providers).toBeUndefined();
    expect(admin.runs.orgId).toBe(acme.orgId);

    const res = await t.as(ops, { method: 'GET', url: '/api/v1/chat/system/metrics?timeRange=15m' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ timeRange: '15m', generatedAt: expect.any(String), from: expect.any(String) });
    expect(body.http.scope).toBe('process');
    expect(body.http.note).toMatch(/this api process/i);
    const queued = body.http.routes.find((r: { route: string }) => r.route === 'POST /api/v1/chat/threads/:threadId/messages/queued');
    expect(queued).toMatchObject({ method: 'POST', path: '/api/v1/chat/threads/:threadId/messages/queued', requests: 6, serverErrors: 0, errorRate: 0 });
    expect(queued.requestsPerMinute).toBeGreaterThan(0);
    for (const p of ['p50', 'p95', 'p99'] as const) expect(queued.latencyMs[p]).toBeGreaterThan(0);
    expect(queued.latencyMs.p50).toBeLessThanOrEqual(queued.latencyMs.p95);
    expect(queued.latencyMs.p95).toBeLessThanOrEqual(queued.latencyMs.p99);
    expect(queued.latencyMs.p99).toBeLessThanOrEqual(queued.latencyMs.max);
    const results = body.http.routes.find((r: { route: string }) => r.route === 'GET /api/v1/chat/batch/:batchId/results');
    expect(results.requests).toBeGreaterThanOrEqual(7);
    const thread = body.http.routes.find((r: { route: string }) => r.route === 'GET /api/v1/chat/threads/:threadId');
    expect(thread).toMatchObject({ requests: 1, clientErrors: 1, serverErrors: 0 });
    expect(body.http.routes.find((r: { route: string }) => r.route === 'GET unmatched')).toMatchObject({ requests: 1, clientErrors: 1 });
    expect(JSON.stringify(body.http)).not.toMatch(UUID);
    expect(body.http.totals.requests).toBeGreaterThan(20);
  });

  it("reports the organization's stages, tokens and runs from PostgreSQL, and to operators the provider calls of this process", async () => {
    const body = (await t.as(acme, { method: 'GET', url: '/api/v1/chat/system/metrics' })).json();
    expect(body.timeRange).toBe('1h');
    expect(body.runs).toEqual({
      scope: 'organization',
      orgId: acme.orgId,
      byStatus: { completed: 5, failed: 1, cancelled: 0, processing: 0, partial: 0 },
      total: 6,
    });
    expect(body.stages).toMatchObject({ scope: 'organization', orgId: acme.orgId });
    const { intent, openai, rocketreach } = body.stages.byStage;
    expect(intent).toMatchObject({ completed: 6, failed: 0, open: 0, retries: 0 });
    expect(intent.completedPerMinute).toBeCloseTo(6 / 60, 3);
    expect(intent.processingMs.p50).toEqual(expect.any(Number));
    expect(intent.processingMs.p95).toBeGreaterThanOrEqual(intent.processingMs.p50);
    expect(intent.waitMs.p50).toEqual(expect.any(Number));
    expect(intent.series.reduce((n: number, m: { completed: number }) => n + m.completed, 0)).toBe(6);
    // The 429 re-ran the step, the 500 retried it; the 401 failed it for good.
    expect(openai).toMatchObject({ completed: 5, failed: 1, retries: 2 });
    expect(openai.failedPerMinute).toBeCloseTo(1 / 60, 3);
    // The LLM waits for the other stages: its wait is measured from the moment they finished.
    expect(openai.waitMs.p50).toBeLessThan(openai.processingMs.p95 + 5_000);
    expect(rocketreach.completed).toBe(6);
    expect(body.tokens.scope).toBe('organization');
    expect(body.tokens.byProvider.openai).toMatchObject({ replies: 5, totalTokens: expect.any(Number) });
    expect(body.tokens.byProvider.openai.totalTokens).toBeGreaterThan(0);
    expect(body.tokens.totalTokens).toBe(body.tokens.byProvider.openai.totalTokens);

    expect(body.providers).toBeUndefined();
    // The operator's view of the same process: its own organization's runs, and the provider calls of every tenant.
    const system = (await t.as(ops, { method: 'GET', url: '/api/v1/chat/system/metrics' })).json();
    expect(system.runs).toMatchObject({ orgId: ops.orgId, total: 0 });
    expect(system.providers.scope).toBe('process');
    // 5 replies + the 429 + the 500 + the 401.
    expect(system.providers.byProvider.openai).toMatchObject({ calls: 8, ok: 5, errors: 2, rateLimited: 1 });
    expect(system.providers.byProvider.openai.promptTokens).toBeGreaterThan(0);
  });

  it("shows another organization none of this organization's runs", async () => {
    const body = (await t.as(globex, { method: 'GET', url: '/api/v1/chat/system/metrics?timeRange=24h' })).json();
    expect(body.runs).toMatchObject({ orgId: globex.orgId, total: 0, byStatus: { completed: 0, failed: 0 } });
    for (const stage of ['intent', 'security', 'rag', 'rocketreach', 'openai']) {
      expect(body.stages.byStage[stage]).toMatchObject({ completed: 0, failed: 0, retries: 0, processingMs: { p50: null }, series: [] });
    }
    expect(body.tokens).toMatchObject({ byProvider: {}, totalTokens: 0 });
  });

  it('is for organization admins, with a known time range', async () => {
    const tenancy = t.container.repositories.tenancy;
    const user = await tenancy.upsertUser('member@metrics.test');
    await tenancy.setMembership(acme.orgId, user.id, 'member');
    const { token } = await tenancy.createToken(user.id);
    const member = await t.app.inject({
      method: 'GET',
      url: '/api/v1/chat/system/metrics',
      headers: { authorization: `Bearer ${token}`, 'x-organization-id': acme.orgId },
    });
    expect(member.statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/chat/system/metrics' })).statusCode).toBe(401);
    const bad = await t.as(acme, { method: 'GET', url: '/api/v1/chat/system/metrics?timeRange=2d' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('invalid_request');
    for (const range of ['5m', '15m', '1h', '6h', '24h']) {
      expect((await t.as(acme, { method: 'GET', url: `/api/v1/chat/system/metrics?timeRange=${range}` })).json().timeRange).toBe(range);
    }
  });
});

describe('Prometheus exposition', () => {
  it('needs the bearer token when METRICS_TOKEN is set', async () => {
    expect((await scrape(null)).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: METRICS_TOKEN } })).statusCode).toBe(401);
    expect((await scrape('wrong-token-0123456789')).statusCode).toBe(401);
    const unauthorised = await scrape('x');
    expect(unauthorised.json().error.code).toBe('unauthorized');
    expect(unauthorised.body).not.toContain('honeyjar_');
    const res = await scrape();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('also serves a system operator\'s API token, and refuses any other valid token with 403', async () => {
    const asOperator = await scrape(ops.token);
    expect(asOperator.statusCode).toBe(200);
    expect(asOperator.body).toContain('honeyjar_queue_stats_up');
    for (const tenant of [acme, globex]) {
      const refused = await scrape(tenant.token);
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.code).toBe('operator_required');
      expect(refused.body).not.toContain('honeyjar_');
    }
  });

  it('is closed when METRICS_TOKEN is not set: only an operator\'s token opens it, and the refusal says why', async () => {
    const other = await createTestApp({});
    try {
      const anonymous = await other.app.inject({ method: 'GET', url: '/metrics' });
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.json()).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('METRICS_TOKEN is not set') } });
      expect(anonymous.body).not.toContain('honeyjar_');
      const admin = await other.tenant('Metrics closed admin');
      expect((await other.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${admin.token}` } })).statusCode).toBe(403);
      const operator = await other.tenant('Metrics closed ops', 'ops@metrics-closed.test', { operator: true });
      const res = await other.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${operator.token}` } });
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('honeyjar_queue_stats_up');
    } finally {
      await other.close();
    }
  });

  it('exports the server metrics with their labels, histograms and process metrics', async () => {
    const text = (await scrape()).body;
    const queuedRoute = 'route="/api/v1/chat/threads/:threadId/messages/queued"';
    expect(lines(text, 'http_request_duration_seconds_bucket').some((l) => l.includes(queuedRoute) && l.includes('method="POST"') && l.includes('status_code="202"') && l.includes('le="0.1"'))).toBe(true);
    expect(text).toMatch(new RegExp(`http_request_duration_seconds_count\\{method="POST",${queuedRoute.replace(/[/:]/g, (c) => `\\${c}`)},status_code="202"\\} 6\\n`));
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');

    for (const queue of ['intent-classification', 'security-classification', 'rag-processing', 'rocketreach-api', 'openai-processing']) {
      for (const state of ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused']) {
        expect(text).toMatch(new RegExp(`honeyjar_queue_jobs\\{queue="${queue}",state="${state}"\\} \\d+`));
      }
      expect(text).toMatch(new RegExp(`honeyjar_worker_concurrency\\{queue="${queue}"\\} [1-9]\\d*`));
    }
    expect(text).toContain('# TYPE honeyjar_queue_jobs gauge');
    expect(text).toMatch(/honeyjar_queue_jobs\{queue="openai-processing",state="failed"\} 1\n/);

    expect(lines(text, 'honeyjar_job_duration_seconds_bucket').some((l) => l.includes('stage="intent"') && l.includes('outcome="completed"'))).toBe(true);
    expect(text).toMatch(/honeyjar_job_duration_seconds_count\{stage="openai",outcome="rate_limited"\} 1\n/);
    expect(text).toMatch(/honeyjar_job_duration_seconds_count\{stage="openai",outcome="retry"\} 1\n/);
    expect(text).toMatch(/honeyjar_job_duration_seconds_count\{stage="openai",outcome="failed"\} 1\n/);
    expect(lines(text, 'honeyjar_job_wait_seconds_bucket').some((l) => l.includes('stage="openai"') && l.includes('le="+Inf"'))).toBe(true);
    expect(text).toMatch(/honeyjar_job_wait_seconds_count\{stage="intent"\} 6\n/);
    expect(text).toContain('# TYPE honeyjar_job_failures_total counter');
    expect(text).toMatch(/honeyjar_job_failures_total\{stage="openai",kind="retry"\} 1\n/);
    expect(text).toMatch(/honeyjar_job_failures_total\{stage="openai",kind="final"\} 1\n/);
    expect(text).toMatch(/honeyjar_job_failures_total\{stage="intent",kind="retry"\} 0\n/);

    expect(text).toMatch(/honeyjar_provider_calls_total\{provider="openai",outcome="ok"\} 5\n/);
    expect(text).toMatch(/honeyjar_provider_calls_total\{provider="openai",outcome="rate_limited"\} 1\n/);
    expect(text).toMatch(/honeyjar_provider_calls_total\{provider="openai",outcome="error"\} 2\n/);
    expect(text).toMatch(/honeyjar_provider_tokens_total\{provider="openai",type="prompt"\} [1-9]\d*\n/);
    expect(text).toMatch(/honeyjar_provider_tokens_total\{provider="openai",type="completion"\} [1-9]\d*\n/);
    expect(text).toMatch(/honeyjar_runs_finished_total\{status="completed"\} 5\n/);
    expect(text).toMatch(/honeyjar_runs_finished_total\{status="failed"\} 1\n/);
    expect(text).toMatch(/honeyjar_runs_finished_total\{status="cancelled"\} 0\n/);

    // collectDefaultMetrics: process and Node.js runtime metrics.
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(text).toContain(`# TYPE ${name}`);
    }
  });

  it('labels routes by their pattern, never with raw ids', async () => {
    const text = (await scrape()).body;
    const routes = [...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]!);
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes) expect(route).not.toMatch(UUID);
    expect(routes).toContain('/api/v1/chat/batch/:batchId/results');
    expect(routes).toContain('/api/v1/chat/threads/:threadId');
    expect(routes).toContain('unmatched');
    expect(text).not.toContain(batches.failed!);
    expect(text).not.toContain(acme.orgId);
  });

  it('keeps a registry per app, so two apps in one process do not mix their figures', async () => {
    const other = await createTestApp({ METRICS_TOKEN });
    try {
      const text = (await other.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body;
      expect(text).not.toContain('messages/queued');
      expect(text).toMatch(/honeyjar_runs_finished_total\{status="completed"\} 0\n/);
    } finally {
      await other.close();
    }
  });
});
