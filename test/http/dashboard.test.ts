import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, eventually, testTransport, type Tenant, type TestApp } from '../support/app.js';
import { storedValues } from '../support/coordination.js';

let t: TestApp;
let acme: Tenant;
let globex: Tenant;
let member: Tenant;
/** A system operator, admin of an organization of its own. */
let ops: Tenant;

beforeAll(async () => {
  t = await createTestApp({ ALERTS_INTERVAL_MS: '0' });
  acme = await t.tenant('Acme Dashboard');
  ops = await t.tenant('Dashboard Operations', 'ops@dashboard-operations.test', { operator: true });
  globex = await t.tenant('Globex Dashboard');
  member = await t.memberOf(acme, 'member@acme-dashboard.test');
  await eventually(async () => t.container.producer.available(), 10_000, 'Redis');
});
afterAll(() => t.close());


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

/** The Cookie header a browser would send back: every cookie set (the session and its CSRF token). */
function cookieOf(setCookie: string | string[] | undefined): string {
  return ([] as string[]).concat(setCookie ?? []).map((header) => header.split(';')[0]!).join('; ');
}

function setCookieNamed(setCookie: string | string[] | undefined, name: string): string {
  return ([] as string[]).concat(setCookie ?? []).find((header) => header.startsWith(`${name}=`))!;
}

function csrfTokenOf(setCookie: string | string[] | undefined): string {
  return setCookieNamed(setCookie, 'XSRF-TOKEN').split(';')[0]!.slice('XSRF-TOKEN='.length);
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
  it('opens a session for a valid token and membership, checked like the auth plugin', async () => {
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ token: 'hj_not-a-token', orgId: acme.orgId }, 401, 'unauthorized'],
      [{ token: acme.token, orgId: globex.orgId }, 403, 'forbidden'],
      [{ token: acme.token, orgId: 'not-a-uuid' }, 403, 'forbidden'],
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
    // A member's session opens; it only gets a 403 from Bull Board (below).
    const memberSession = await openSession(member);
    expect(memberSession.statusCode).toBe(201);
    expect(memberSession.json()).toMatchObject({ userId: member.userId, operator: false });
    expect((await openSession(ops)).json()).toMatchObject({ userId: ops.userId, operator: true });
  });

  it('sets an HttpOnly, SameSite=Strict cookie for /admin holding an opaque id, kept in the coordination store for 8 hours', async () => {
    const res = await openSession(acme);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ bullBoard: '/admin/queues', orgId: acme.orgId, userId: acme.userId });
    const header = setCookieNamed(res.headers['set-cookie'], 'hj_admin_session');
    expect(header).toMatch(/^hj_admin_session=[A-Za-z0-9_-]{43}; /);
    for (const attribute of ['Path=/admin', 'HttpOnly', 'SameSite=Strict', 'Max-Age=28800']) expect(header).toContain(attribute);
    expect(String(res.headers['set-cookie'])).not.toContain(acme.token);
    expect(String(res.headers['set-cookie'])).not.toContain(acme.token.slice(3, 20));
    // Its CSRF token: for the board's scripts to read (not HttpOnly), on the same path, never the session id.
    const csrf = setCookieNamed(res.headers['set-cookie'], 'XSRF-TOKEN');
    expect(csrf).toMatch(/^XSRF-TOKEN=[A-Za-z0-9_-]{43}; /);
    for (const attribute of ['Path=/admin', 'SameSite=Strict', 'Max-Age=28800']) expect(csrf).toContain(attribute);
    expect(csrf).not.toContain('HttpOnly');
    expect(csrfTokenOf(res.headers['set-cookie'])).not.toBe(header.split(';')[0]!.split('=')[1]);
    // Over plain HTTP (and no trusted proxy) the cookies are not Secure.
    expect(String(res.headers['set-cookie'])).not.toContain('Secure');

    const stored = await storedValues(t, `${t.container.config.queue.prefix}:dashboard:session:`);
    expect(stored.length).toBeGreaterThan(0);
    const sessionId = header.split(';')[0]!.split('=')[1]!;
    for (const { key, value, ttlMs } of stored) {
      expect(key).not.toContain(sessionId);
      expect(value).not.toContain(acme.token);
      expect(ttlMs).toBeGreaterThan(7.9 * 3600_000);
      expect(ttlMs).toBeLessThanOrEqual(8 * 3600_000);
    }
  });

  it("lets an operator's session into /admin/queues and keeps everyone else out, an org admin's session with 403", async () => {
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

    for (const tenant of [acme, member, globex]) {
      const refused = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie: cookieOf((await openSession(tenant)).headers['set-cookie']) } });
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.code).toBe('operator_required');
      // No queue, job or organization id in the refusal.
      expect(refused.body).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/);
    }
    const adminPage = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: { cookie: cookieOf((await openSession(acme)).headers['set-cookie']), accept: 'text/html' } });
    expect(adminPage.statusCode).toBe(303);
    expect(adminPage.headers.location).toBe('/dashboard?bullBoard=forbidden');

    const cookie = cookieOf((await openSession(ops)).headers['set-cookie']);
    const page = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: { cookie, accept: 'text/html' } });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>honeyjar queues</title>');
    const queues = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie } });
    expect(queues.statusCode).toBe(200);
    expect(queues.json().queues.map((q: { name: string }) => q.name).sort()).toEqual(
      ['intent-classification', 'openai-processing', 'rag-processing', 'rocketreach-api', 'security-classification'],
    );
    // Bull Board reads the queues on either transport: a waiting job (in its fair place, BullMQ's
    // prioritized set), and the store it runs on.
    const runId = randomUUID();
    await t.container.producer.enqueue(runId, ops.orgId, ['rag']);
    const waiting = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues?activeQueue=rag-processing&status=prioritized&page=1&jobsPerPage=10', headers: { cookie } });
    const rag = waiting.json().queues.find((q: { name: string }) => q.name === 'rag-processing');
    expect(rag.counts.prioritized).toBe(1);
    expect(rag.jobs.map((job: { id: string }) => job.id)).toEqual([`${runId}.rag`]);
    const stats = await t.app.inject({ method: 'GET', url: '/admin/queues/api/redis/stats', headers: { cookie } });
    expect(stats.json()).toMatchObject({ backend: testTransport });
    await t.container.producer.cancel([{ jobId: `${runId}.rag`, stage: 'rag' }], 'test over');
    const asset = /src="(static\/js\/[^"]+)"/.exec(page.body)![1]!;
    expect((await t.app.inject({ method: 'GET', url: `/admin/queues/${asset}`, headers: { cookie } })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: `/admin/queues/${asset}` })).statusCode).toBe(401);
  });

  it('ends the board for a session whose operator flag is revoked, whose token is revoked, or on sign-out', async () => {
    const tenancy = t.container.repositories.tenancy;
    const second = await t.tenant('Second Operations', 'second-ops@dashboard-operations.test', { operator: true });
    const cookie = cookieOf((await openSession(second)).headers['set-cookie']);
    const get = () => t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie } });
    expect((await get()).statusCode).toBe(200);

    // Revoked (as `honeyjar operator revoke` does): the next request is refused, no restart, no wait.
    expect(await tenancy.setOperator('Second-Ops@dashboard-operations.test', false)).toMatchObject({ userId: second.userId, operator: false });
    expect((await get()).statusCode).toBe(403);
    const page = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: { cookie, accept: 'text/html' } });
    expect(page.headers.location).toBe('/dashboard?bullBoard=forbidden');
    await tenancy.setOperator('second-ops@dashboard-operations.test', true);
    expect((await get()).statusCode).toBe(200);

    await tenancy.revokeToken(second.token);
    expect((await get()).statusCode).toBe(401);

    const other = cookieOf((await openSession(ops)).headers['set-cookie']);
    const out = await t.app.inject({ method: 'DELETE', url: '/admin/session', headers: { cookie: other } });
    expect(out.statusCode).toBe(204);
    expect(setCookieNamed(out.headers['set-cookie'], 'hj_admin_session')).toMatch(/^hj_admin_session=; Path=\/admin; Max-Age=0/);
    expect(setCookieNamed(out.headers['set-cookie'], 'XSRF-TOKEN')).toMatch(/^XSRF-TOKEN=; Path=\/admin; Max-Age=0/);
    expect((await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie: other } })).statusCode).toBe(401);
  });

  it("refuses a state-changing call without the session's CSRF token, and makes it with the header the board's client sends", async () => {
    const session = await openSession(ops);
    const cookie = cookieOf(session.headers['set-cookie']);
    const csrfToken = csrfTokenOf(session.headers['set-cookie']);
    const queue = t.container.producer.queues.rag;
    const pause = (headers: Record<string, string>) =>
      t.app.inject({ method: 'PUT', url: '/admin/queues/api/queues/rag-processing/pause', headers: { cookie, ...headers } });

    // What a same-site page can make a browser send: the cookies, but no header it cannot read.
    for (const headers of [{} as Record<string, string>, { 'x-xsrf-token': 'A'.repeat(43) }, { 'x-xsrf-token': '' }, { 'x-xsrf-token': csrfTokenOf((await openSession(ops)).headers['set-cookie']) }]) {
      const refused = await pause(headers);
      expect(refused.statusCode, JSON.stringify(headers)).toBe(403);
      expect(refused.json().error.code).toBe('csrf_token_invalid');
    }
    for (const [method, url] of [
      ['PUT', '/admin/queues/api/queues/pause'],
      ['POST', '/admin/queues/api/queues/rag-processing/add'],
      ['PUT', '/admin/queues/api/queues/rag-processing/obliterate'],
      ['PUT', '/admin/queues/api/queues/rag-processing/clean/completed'],
    ] as const) {
      const refused = await t.app.inject({ method, url, headers: { cookie }, payload: method === 'POST' ? { name: 'x', data: {} } : undefined });
      expect(refused.statusCode, url).toBe(403);
    }
    expect(await queue.isPaused()).toBe(false);

    // Bull Board's HTTP client (axios) reads the XSRF-TOKEN cookie and sends it as X-XSRF-TOKEN.
    const paused = await pause({ 'x-xsrf-token': csrfToken });
    expect(paused.statusCode).toBe(200);
    expect(await queue.isPaused()).toBe(true);
    const resumed = await t.app.inject({ method: 'PUT', url: '/admin/queues/api/queues/rag-processing/resume', headers: { cookie, 'x-xsrf-token': csrfToken } });
    expect(resumed.statusCode).toBe(200);
    expect(await queue.isPaused()).toBe(false);
    // Reads need no token.
    expect((await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { cookie } })).statusCode).toBe(200);
  });

  it('marks the cookies Secure behind a trusted TLS proxy only (TRUST_PROXY)', async () => {
    const forwarded = { 'x-forwarded-proto': 'https' };
    const untrusted = await t.app.inject({ method: 'POST', url: '/dashboard/session', headers: forwarded, payload: { token: ops.token, orgId: ops.orgId } });
    expect(String(untrusted.headers['set-cookie'])).not.toContain('Secure');
    const proxied = await createTestApp({ ALERTS_INTERVAL_MS: '0', TRUST_PROXY: '127.0.0.1' });
    try {
      const tenant = await proxied.tenant('Proxied Operations', 'ops@proxied.test', { operator: true });
      const res = await proxied.app.inject({ method: 'POST', url: '/dashboard/session', headers: forwarded, payload: { token: tenant.token, orgId: tenant.orgId } });
      expect(res.statusCode).toBe(201);
      for (const name of ['hj_admin_session', 'XSRF-TOKEN']) expect(setCookieNamed(res.headers['set-cookie'], name)).toMatch(/; Secure$/);
      const plain = await proxied.app.inject({ method: 'POST', url: '/dashboard/session', payload: { token: tenant.token, orgId: tenant.orgId } });
      expect(String(plain.headers['set-cookie'])).not.toContain('Secure');
    } finally {
      await proxied.close();
    }
  });

  it('keeps Bull Board and the dashboard out of the OpenAPI document, which lists /jobs/failed', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    const paths = Object.keys(doc.paths);
    expect(paths).toContain('/api/v1/chat/jobs/failed');
    expect(paths.filter((p) => p.startsWith('/admin') || p.startsWith('/dashboard'))).toEqual([]);
  });
});
