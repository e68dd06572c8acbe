import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

let t: TestApp;
let acme: Tenant;
let globex: Tenant;
let member: Tenant;

beforeAll(async () => {
  t = await createTestApp({ ALERTS_INTERVAL_MS: '0' });
  acme = await t.tenant('Acme Dashboard');
  globex = await t.tenant('Globex Dashboard');
  member = await memberOf(acme, 'member@acme-dashboard.test');
  await eventually(async () => t.container.producer.available(), 10_000, 'Redis');
});
afterAll(() => t.close());

async function memberOf(org: Tenant, email: string): Promise<Tenant> {
  const tenancy = t.container.repositories.tenancy;
  const user = await tenancy.upsertUser(email);
  await tenancy.setMembership(org.orgId, user.id, 'member');
  const { token } = await tenancy.createToken(user.id, 'member token');
  return { orgId: org.orgId, userId: user.id, token, headers: { authorization: `Bearer ${token}`, 'x-organization-id': org.orgId } };
}

/** A run whose `stage` step failed for good, written as the workers write it. */
async function failedStep(org: Tenant, stage: string, queue: string, error: { code: string; message: string }, finishedSecondsAgo = 0) {
  const thread = (await t.as(org, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'failing' } })).json();
  const { rows } = await t.database.pool.query(
    `insert into runs (org_id, thread_id, user_id, status, source, driver, finished_at, message_id, seq)
     values ($1, $2, $3, 'failed', 'queued', 'queue', now(), gen_random_uuid(), nextval('messages_seq_seq')) returning id`,
    [org.orgId, thread.id, org.userId],
  );
  const runId = rows[0].id as string;
  await t.database.pool.query(
    `insert into run_steps (run_id, stage, org_id, job_id, queue, status, attempts, max_attempts, error, started_at, finished_at)
     values ($1, $2, $3, $4, $5, 'failed', 3, 3, $6, now() - interval '2 seconds' - make_interval(secs => $7), now() - make_interval(secs => $7))`,
    [runId, stage, org.orgId, `${runId}.${stage}`, queue, JSON.stringify(error), finishedSecondsAgo],
  );
  return { runId, threadId: thread.id as string, jobId: `${runId}.${stage}` };
}

function cookieOf(setCookie: string | string[] | undefined): string {
  const header = Array.isArray(setCookie) ? setCookie[0]! : setCookie!;
  return header.split(';')[0]!;
}

async function openSession(tenant: Tenant) {
  return t.app.inject({ method: 'POST', url: '/dashboard/session', payload: { token: tenant.token, orgId: tenant.orgId } });
}

describe('GET /api/v1/chat/jobs/failed', () => {
  it("lists the organization's failed steps, newest first, and nobody else's", async () => {
    const older = await failedStep(acme, 'rag', 'rag-processing', { code: 'database_error', message: 'search failed' }, 30);
    const newer = await failedStep(acme, 'openai', 'openai-processing', { code: 'invalid_api_key', message: 'The key was rejected' });
    const foreign = await failedStep(globex, 'intent', 'intent-classification', { code: 'boom', message: 'not yours' });

    const res = await t.as(member, { method: 'GET', url: '/api/v1/chat/jobs/failed?limit=20' });
    expect(res.statusCode).toBe(200);
    const jobs = res.json().jobs;
    expect(jobs.map((j: { jobId: string }) => j.jobId)).toEqual([newer.jobId, older.jobId]);
    expect(jobs[0]).toEqual({
      jobId: newer.jobId,
      batchId: newer.runId,
      threadId: newer.threadId,
      stage: 'openai',
      queue: 'openai-processing',
      error: { code: 'invalid_api_key', message: 'The key was rejected' },
      attempts: 3,
      maxAttempts: 3,
      startedAt: expect.any(String),
      finishedAt: expect.any(String),
    });
    expect(JSON.stringify(jobs)).not.toContain(foreign.jobId);

    const limited = await t.as(acme, { method: 'GET', url: '/api/v1/chat/jobs/failed?limit=1' });
    expect(limited.json().jobs).toHaveLength(1);
    for (const limit of ['0', '201', 'x']) {
      expect((await t.as(acme, { method: 'GET', url: `/api/v1/chat/jobs/failed?limit=${limit}` })).statusCode).toBe(400);
    }
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/chat/jobs/failed' })).statusCode).toBe(401);
  });
});

describe('the dashboard page', () => {
  it('serves the page and its assets from this server, with a strict content security policy', async () => {
    const page = await t.app.inject({ method: 'GET', url: '/dashboard' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('<script src="/dashboard/dashboard.js" defer></script>');
    expect(page.body).not.toMatch(/https?:\/\//);
    const js = await t.app.inject({ method: 'GET', url: '/dashboard/dashboard.js' });
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.body).toContain('sessionStorage');
    expect((await t.app.inject({ method: 'GET', url: '/dashboard/dashboard.css' })).headers['content-type']).toMatch(/^text\/css/);
    expect((await t.app.inject({ method: 'GET', url: '/dashboard/' })).headers.location).toBe('/dashboard');
  });
});

describe('Bull Board sessions', () => {
  it('opens a session only for an organization admin, checked like the auth plugin', async () => {
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ token: 'hj_not-a-token', orgId: acme.orgId }, 401, 'unauthorized'],
      [{ token: acme.token, orgId: globex.orgId }, 403, 'forbidden'],
      [{ token: acme.token, orgId: 'not-a-uuid' }, 403, 'forbidden'],
      [{ token: member.token, orgId: acme.orgId }, 403, 'forbidden'],
      [{ token: acme.token }, 400, 'invalid_request'],
    ];
    for (const [payload, status, code] of cases) {
      const res = await t.app.inject({ method: 'POST', url: '/dashboard/session', payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(status);
      expect(res.json().error.code).toBe(code);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const revoked = await t.container.repositories.tenancy.createToken(acme.userId, 'revoked');
    await t.container.repositories.tenancy.revokeToken(revoked.id);
    expect((await t.app.inject({ method: 'POST', url: '/dashboard/session', payload: { token: revoked.token, orgId: acme.orgId } })).statusCode).toBe(401);
  });

  it('sets an HttpOnly, SameSite=Strict cookie for /admin holding an opaque id, kept in Redis for 8 hours', async () => {
    const res = await openSession(acme);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ bullBoard: '/admin/queues', orgId: acme.orgId, userId: acme.userId });
    const header = String(res.headers['set-cookie']);
    expect(header).toMatch(/^hj_admin_session=[A-Za-z0-9_-]{43}; /);
    for (const attribute of ['Path=/admin', 'HttpOnly', 'SameSite=Strict', 'Max-Age=28800']) expect(header).toContain(attribute);
    expect(header).not.toContain(acme.token);
    expect(header).not.toContain(acme.token.slice(3, 20));

    const keys = await t.container.redis.keys(`${t.container.config.queue.prefix}:dashboard:session:*`);
    expect(keys.length).toBeGreaterThan(0);
    const sessionId = cookieOf(res.headers['set-cookie']).split('=')[1]!;
    for (const key of keys) {
      expect(key).not.toContain(sessionId);
      expect(await t.container.redis.get(key)).not.toContain(acme.token);
      const ttl = await t.container.redis.pttl(key);
      expect(ttl).toBeGreaterThan(7.9 * 3600_000);
      expect(ttl).toBeLessThanOrEqual(8 * 3600_000);
    }
  });

  it('lets an admin session into /admin/queues and keeps everyone else out', async () => {
    const noCookie = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues' });
    expect(noCookie.statusCode).toBe(401);
    expect(noCookie.json().error.code).toBe('unauthorized');
    const forged = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie: 'hj_admin_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
    expect(forged.statusCode).toBe(401);
    // The Bearer header is not a way in: Bull Board takes the session cookie only.
    expect((await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: acme.headers })).statusCode).toBe(401);
    const navigation = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(navigation.statusCode).toBe(303);
    expect(navigation.headers.location).toBe('/dashboard?bullBoard=signin');

    const cookie = cookieOf((await openSession(acme)).headers['set-cookie']);
    const page = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: { cookie, accept: 'text/html' } });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>honeyjar queues</title>');
    const queues = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie } });
    expect(queues.statusCode).toBe(200);
    expect(queues.json().queues.map((q: { name: string }) => q.name).sort()).toEqual(
      ['intent-classification', 'openai-processing', 'rag-processing', 'rocketreach-api', 'security-classification'],
    );
    const asset = /src="(static\/js\/[^"]+)"/.exec(page.body)![1]!;
    expect((await t.app.inject({ method: 'GET', url: `/admin/queues/${asset}`, headers: { cookie } })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: `/admin/queues/${asset}` })).statusCode).toBe(401);
  });

  it('ends the session when its token is revoked, its user is no longer an admin, or on sign-out', async () => {
    const tenancy = t.container.repositories.tenancy;
    const admin = await memberOf(acme, 'second-admin@acme-dashboard.test');
    await tenancy.setMembership(acme.orgId, admin.userId, 'admin');
    const cookie = cookieOf((await openSession(admin)).headers['set-cookie']);
    const get = () => t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie } });
    expect((await get()).statusCode).toBe(200);

    await tenancy.setMembership(acme.orgId, admin.userId, 'member');
    expect((await get()).statusCode).toBe(403);
    const page = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: { cookie, accept: 'text/html' } });
    expect(page.headers.location).toBe('/dashboard?bullBoard=forbidden');
    await tenancy.setMembership(acme.orgId, admin.userId, 'admin');
    expect((await get()).statusCode).toBe(200);

    await tenancy.revokeToken(admin.token);
    expect((await get()).statusCode).toBe(401);

    const other = cookieOf((await openSession(acme)).headers['set-cookie']);
    const out = await t.app.inject({ method: 'DELETE', url: '/admin/session', headers: { cookie: other } });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^hj_admin_session=; Path=\/admin; Max-Age=0/);
    expect((await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie: other } })).statusCode).toBe(401);
  });

  it('keeps Bull Board and the dashboard out of the OpenAPI document, which lists /jobs/failed', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    const paths = Object.keys(doc.paths);
    expect(paths).toContain('/api/v1/chat/jobs/failed');
    expect(paths.filter((p) => p.startsWith('/admin') || p.startsWith('/dashboard'))).toEqual([]);
  });
});
