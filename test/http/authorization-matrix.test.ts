import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

/*
 * Every route the app registers (read from Fastify's route table, Bull Board's included) against
 * every kind of caller. A route without an entry in EXPECTED fails the first test, so a new route
 * cannot ship without its authorization being stated here. For callers outside the owning
 * organization the answer must not carry the owner's ids (organization, users, thread, batch,
 * documents) beyond those the caller itself sent.
 */

const CALLERS = ['none', 'revoked', 'otherOrg', 'member', 'admin', 'operator'] as const;
type CallerName = (typeof CALLERS)[number];
type Expected = Record<CallerName, number>;

interface Caller {
  name: CallerName;
  tenant: Tenant | undefined;
  /** Cookie header of a dashboard session opened with the caller's token (session and CSRF cookies). */
  cookie: string | undefined;
  csrfToken: string | undefined;
}

interface Fixtures {
  owner: Tenant;
  member: Tenant;
  threadId: string;
  batchId: string;
  documentId: string;
  alertId: string;
  /** A delayed job of the board's own, in BOARD_QUEUE, for the job-level Bull Board calls. */
  boardJobId: string;
}

interface RouteCase {
  expect: Expected;
  /** The request beyond method, url (params filled in) and the caller's credentials. */
  request?: (caller: Caller, f: Fixtures) => Promise<Partial<InjectOptions>> | Partial<InjectOptions>;
  /** A system-wide surface: an operator may see every tenant's ids there. */
  systemWide?: boolean;
}

const BOARD_QUEUE = 'rocketreach-api';

const open = (status: number): Expected => ({ none: status, revoked: status, otherOrg: status, member: status, admin: status, operator: status });
/** Authenticated routes: no token or a revoked one 401, then per caller. */
const authed = (otherOrg: number, member: number, admin: number, operator: number): Expected => ({ none: 401, revoked: 401, otherOrg, member, admin, operator });
/** Bull Board: sessions of anyone but an operator are 403. */
const board = (operator: number): Expected => ({ none: 401, revoked: 401, otherOrg: 403, member: 403, admin: 403, operator });

const json = (payload: unknown): Partial<InjectOptions> => ({ payload: payload as InjectOptions['payload'] });

const EXPECTED: Record<string, RouteCase> = {
  'GET /api/v1/openapi.json': { expect: open(200) },
  // Every tenant's traffic and the system-wide queue counts: METRICS_TOKEN (unset here) or an operator's token.
  'GET /metrics': { expect: authed(403, 403, 403, 200), systemWide: true },
  'GET /dashboard': { expect: open(200) },
  'GET /dashboard/': { expect: open(301) },
  'GET /dashboard/dashboard.js': { expect: open(200) },
  'GET /dashboard/dashboard.css': { expect: open(200) },
  'POST /dashboard/session': {
    // Anyone with a valid token and membership may open one; Bull Board then wants an operator.
    expect: { none: 400, revoked: 401, otherOrg: 201, member: 201, admin: 201, operator: 201 },
    request: (c) => (c.tenant ? json({ token: c.tenant.token, orgId: c.tenant.orgId }) : {}),
  },
  'DELETE /admin/session': {
    expect: open(204),
    // A session of its own, so that the caller's board session lives on for the other routes.
    request: async (c) => ({ headers: { cookie: c.tenant && c.name !== 'revoked' ? (await openSession(c.tenant)).cookie : '' } }),
  },

  'GET /admin/queues': { expect: board(200), systemWide: true },
  'GET /admin/queues/metrics-history': { expect: board(200), systemWide: true },
  'GET /admin/queues/job-schedulers': { expect: board(200), systemWide: true },
  'GET /admin/queues/queue/:queueName': { expect: board(200), systemWide: true },
  'GET /admin/queues/queue/:queueName/:jobId': { expect: board(200), systemWide: true },
  'GET /admin/queues/static/*': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/redis/stats': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/job-schedulers': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/metrics': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/default-job-options': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/workers': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/rate-limit': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/job-data-schema': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/pause': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/resume': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/:jobId/logs': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/:jobId/flow': { expect: board(200), systemWide: true },
  'GET /admin/queues/api/queues/:queueName/:jobId': { expect: board(200), systemWide: true },
  'POST /admin/queues/api/queues/:queueName/add': {
    expect: board(200),
    systemWide: true,
    request: () => json({ name: 'matrix', data: { note: 'added by the matrix' }, options: { delay: 3_600_000 } }),
  },
  'PUT /admin/queues/api/queues/:queueName/retry/:queueStatus': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/promote': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/clean/:queueStatus': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/pause': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/resume': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/concurrency': { expect: board(200), systemWide: true, request: () => json({ concurrency: 2 }) },
  'PUT /admin/queues/api/queues/:queueName/rate-limit': { expect: board(200), systemWide: true, request: () => json({ max: 10, duration: 1000 }) },
  'PUT /admin/queues/api/queues/:queueName/rate-limit/release': { expect: board(200), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/empty': { expect: board(200), systemWide: true },
  // Reaches Bull Board, which wants the queue paused first.
  'PUT /admin/queues/api/queues/:queueName/obliterate': { expect: board(400), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/job-schedulers/:schedulerId/remove': { expect: board(204), systemWide: true },
  'PATCH /admin/queues/api/queues/:queueName/job-schedulers/:schedulerId': { expect: board(204), systemWide: true, request: () => json({ every: 7_200_000 }) },
  'PUT /admin/queues/api/queues/:queueName/job-schedulers/:schedulerId/run': { expect: board(200), systemWide: true },
  // The board's job is delayed: Bull Board answers that it cannot be retried.
  'PUT /admin/queues/api/queues/:queueName/:jobId/retry': { expect: board(400), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/:jobId/clean': { expect: board(204), systemWide: true },
  'PUT /admin/queues/api/queues/:queueName/:jobId/promote': { expect: board(204), systemWide: true },
  'PATCH /admin/queues/api/queues/:queueName/:jobId/update-data': { expect: board(200), systemWide: true, request: () => json({ jobData: { note: 'edited' } }) },
  'PATCH /admin/queues/api/queues/:queueName/:jobId/delay': { expect: board(200), systemWide: true, request: () => json({ runAt: Date.now() + 3_600_000 }) },
  'PATCH /admin/queues/api/queues/:queueName/:jobId/priority': { expect: board(200), systemWide: true, request: () => json({ priority: 3 }) },
  'PUT /admin/queues/api/queues/:queueName/:jobId/remove-unprocessed-children': { expect: board(400), systemWide: true },

  'GET /api/v1/me': { expect: authed(200, 200, 200, 200) },
  // The caller's own organization's settings: members read them, admins change them.
  'GET /api/v1/organization/settings': { expect: authed(200, 200, 200, 200) },
  'PATCH /api/v1/organization/settings': { expect: authed(200, 403, 200, 200), request: () => json({ multitaskStrategy: 'enqueue' }) },
  'GET /api/v1/chat/system/health': { expect: open(200) },
  'GET /api/v1/chat/system/health/detailed': { expect: authed(403, 403, 403, 200), systemWide: true },
  'GET /api/v1/chat/system/metrics': { expect: authed(200, 403, 200, 200) },
  'POST /api/v1/chat/threads': { expect: authed(201, 201, 201, 201), request: () => json({ title: 'matrix' }) },
  'GET /api/v1/chat/threads': { expect: authed(200, 200, 200, 200) },
  'GET /api/v1/chat/threads/:threadId': { expect: authed(404, 200, 200, 404) },
  'GET /api/v1/chat/threads/:threadId/messages': { expect: authed(404, 200, 200, 404) },
  'POST /api/v1/chat/threads/:threadId/messages': {
    expect: authed(404, 200, 200, 404),
    // A thread of its own: the shared one has queued turns that no worker answers here, and a reply waits for earlier turns.
    request: async (_c, f) => ({ url: `/api/v1/chat/threads/${await ownerThread(f)}/messages`, ...json({ content: 'Who approves statements?' }) }),
  },
  'POST /api/v1/chat/threads/:threadId/messages/queued': { expect: authed(404, 202, 202, 404), request: () => json({ content: 'Draft a holding statement' }) },
  'GET /api/v1/chat/batch/:batchId/results': { expect: authed(404, 200, 200, 404) },
  // Event streams: read as a stream, up to their first bytes (an open stream does not end by itself).
  'GET /api/v1/chat/batch/:batchId/events': { expect: authed(404, 200, 200, 404), request: () => ({ payloadAsStream: true }) },
  'GET /api/v1/chat/threads/:threadId/events': { expect: authed(404, 200, 200, 404), request: () => ({ payloadAsStream: true }) },
  'POST /api/v1/chat/stream-tickets': { expect: authed(404, 201, 201, 404), request: (_c, f) => json({ batchId: f.batchId }) },
  'POST /api/v1/chat/comprehensive': {
    expect: authed(404, 202, 202, 404),
    request: (_c, f) => json({ message: 'Summarise the launch plan', threadId: f.threadId }),
  },
  'POST /api/v1/chat/jobs/status': { expect: authed(200, 200, 200, 200), request: (_c, f) => json({ jobIds: [`${f.batchId}.intent`] }) },
  'POST /api/v1/chat/jobs/cancel': {
    expect: authed(200, 200, 200, 200),
    // A batch of its own for each caller: cancelling must not take the shared one away.
    request: async (_c, f) => json({ jobIds: [`${await queuedBatch(f)}.openai`], reason: 'matrix' }),
  },
  'GET /api/v1/chat/jobs/queue-stats': { expect: authed(200, 200, 200, 200) },
  'GET /api/v1/chat/jobs/failed': { expect: authed(200, 200, 200, 200) },
  'GET /api/v1/chat/system/alerts': { expect: authed(200, 403, 200, 200) },
  'POST /api/v1/chat/system/alerts/:alertId/acknowledge': { expect: authed(403, 403, 403, 200) },
  'GET /api/v1/chat/system/queue-status': { expect: authed(403, 403, 403, 200), systemWide: true },
  'POST /api/v1/documents': { expect: authed(201, 201, 201, 201), request: () => json({ title: 'Matrix note', content: 'Statements go through the head of communications.' }) },
  'GET /api/v1/documents': { expect: authed(200, 200, 200, 200) },
  'GET /api/v1/documents/:documentId': { expect: authed(404, 200, 200, 404) },
  'DELETE /api/v1/documents/:documentId': {
    // The owner's admin added it: a member may not delete it, an admin may.
    expect: authed(404, 403, 204, 404),
    request: async (_c, f) => ({ url: `/api/v1/documents/${await ownerDocument(f)}` }),
  },
  // The OpenAI-compatible door: the same tokens, the organization from x-organization-id.
  'GET /v1/models': { expect: authed(200, 200, 200, 200) },
  'POST /v1/chat/completions': {
    // A thread of the owner's own, named by the header: another organization's is 404. No workers
    // run here, so the owner's callers stream and are read up to the role chunk; the batch goes on.
    expect: authed(404, 200, 200, 404),
    request: async (_c, f) => ({
      headers: { 'x-honeyjar-thread-id': await ownerThread(f) },
      payloadAsStream: true,
      ...json({ model: 'honeyjar', stream: true, messages: [{ role: 'user', content: 'Who approves statements?' }] }),
    }),
  },
};

let t: TestApp;
let callers: Caller[];
let fixtures: Fixtures;
let cells = 0;
/** Answers to the owner's own callers that carried the owner's ids: the leak check can see them. */
let ownerAnswersWithIds = 0;
/** Ids of the owning organization that callers outside it must never be shown. */
const ownerIds = new Set<string>();


async function openSession(tenant: Tenant): Promise<{ cookie: string; csrfToken: string }> {
  const res = await t.app.inject({ method: 'POST', url: '/dashboard/session', payload: { token: tenant.token, orgId: tenant.orgId } });
  expect(res.statusCode).toBe(201);
  const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []).map((header) => header.split(';')[0]!);
  const csrfToken = cookies.find((c) => c.startsWith('XSRF-TOKEN='))!.slice('XSRF-TOKEN='.length);
  return { cookie: cookies.join('; '), csrfToken };
}

/** A streamed answer: the whole of it, or (`open`: an event stream) its first chunk. */
function firstBytes(stream: NodeJS.ReadableStream, open: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer | string) => {
      text += chunk.toString();
      if (open) resolve(text);
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

async function queuedBatch(f: Fixtures): Promise<string> {
  const res = await t.as(f.owner, { method: 'POST', url: `/api/v1/chat/threads/${f.threadId}/messages/queued`, payload: { content: 'Plan the launch' } });
  expect(res.statusCode).toBe(202);
  const batchId: string = res.json().data.tracking.batchId;
  ownerIds.add(batchId);
  return batchId;
}

async function ownerThread(f: Fixtures): Promise<string> {
  const res = await t.as(f.owner, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'Blocking' } });
  expect(res.statusCode).toBe(201);
  ownerIds.add(res.json().id);
  return res.json().id;
}

async function ownerDocument(f: Fixtures): Promise<string> {
  const res = await t.as(f.owner, { method: 'POST', url: '/api/v1/documents', payload: { title: 'Owner note', content: 'Only the owner organization reads this.' } });
  expect(res.statusCode).toBe(201);
  ownerIds.add(res.json().id);
  return res.json().id;
}

/** The board's own delayed job and job scheduler, put back before each call (an operator's call may have removed them). */
async function resetBoardObjects(): Promise<void> {
  const queue = t.container.producer.queues.rocketreach;
  await queue.remove(fixtures.boardJobId);
  await queue.add('matrix-board-job', { note: 'the board works on this one' } as never, { delay: 3_600_000, jobId: fixtures.boardJobId });
  await queue.upsertJobScheduler('matrix-scheduler', { every: 3_600_000 }, { name: 'matrix-scheduled', data: { note: 'scheduled' } as never });
}

/** The owner's run with a step that failed for good, written as the workers write it. */
async function failedStep(owner: Tenant, threadId: string): Promise<string> {
  const { rows } = await t.database.pool.query(
    `insert into runs (org_id, thread_id, user_id, status, source, driver, finished_at, message_id, seq)
     values ($1, $2, $3, 'failed', 'queued', 'queue', now(), gen_random_uuid(), nextval('messages_seq_seq')) returning id`,
    [owner.orgId, threadId, owner.userId],
  );
  const runId = rows[0].id as string;
  await t.database.pool.query(
    `insert into run_steps (run_id, stage, org_id, job_id, queue, status, attempts, max_attempts, error, started_at, finished_at)
     values ($1, 'rag', $2, $3, 'rag-processing', 'failed', 3, 3, $4, now() - interval '2 seconds', now())`,
    [runId, owner.orgId, `${runId}.rag`, JSON.stringify({ code: 'database_error', message: 'search failed' })],
  );
  return runId;
}

function fillParams(url: string, f: Fixtures): string {
  const values: Record<string, string> = {
    threadId: f.threadId,
    batchId: f.batchId,
    documentId: f.documentId,
    alertId: f.alertId,
    queueName: BOARD_QUEUE,
    jobId: f.boardJobId,
    queueStatus: 'failed',
    schedulerId: 'matrix-scheduler',
  };
  return url
    .replace(/:([A-Za-z]+)/g, (_, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`no value for :${name} in ${url}`);
      return value;
    })
    .replace(/\*$/, 'favicon-32x32.png');
}

async function call(route: string, c: Caller, f: Fixtures): Promise<{ res: LightMyRequestResponse; sent: string }> {
  const [method, url] = route.split(' ') as [InjectOptions['method'], string];
  const extra = (await EXPECTED[route]!.request?.(c, f)) ?? {};
  const changes = method !== 'GET' && method !== 'HEAD';
  const headers: Record<string, string> = {
    accept: 'application/json',
    ...(c.tenant ? c.tenant.headers : {}),
    ...(c.cookie ? { cookie: c.cookie } : {}),
    // The board's own client sends its session's token back (see the CSRF tests below).
    ...(changes && c.csrfToken && url.startsWith('/admin/queues') ? { 'x-xsrf-token': c.csrfToken } : {}),
    ...((extra.headers as Record<string, string> | undefined) ?? {}),
  };
  const options: InjectOptions = { method, url: fillParams(url, f), ...extra, headers };
  const res = await t.app.inject(options);
  const sent = `${options.url} ${JSON.stringify(options.payload ?? '')}`;
  if (!options.payloadAsStream) return { res, sent };
  const body = await firstBytes(res.stream(), res.statusCode === 200);
  return { res: { statusCode: res.statusCode, body } as LightMyRequestResponse, sent };
}

beforeAll(async () => {
  t = await createTestApp({ ALERTS_INTERVAL_MS: '0', RATE_LIMIT_MAX: '100000' });
  await eventually(async () => t.container.producer.available(), 10_000, 'Redis');
  const tenancy = t.container.repositories.tenancy;
  const owner = await t.tenant('Matrix Owner', 'admin@matrix-owner.test');
  const member = await t.memberOf(owner, 'member@matrix-owner.test');
  const other = await t.tenant('Matrix Other', 'admin@matrix-other.test');
  const operator = await t.tenant('Matrix Operations', 'ops@matrix-operations.test');
  await tenancy.setOperator('ops@matrix-operations.test', true);
  const extra = await tenancy.createToken(owner.userId, 'to be revoked');
  const revoked: Tenant = { ...owner, token: extra.token, headers: { authorization: `Bearer ${extra.token}`, 'x-organization-id': owner.orgId } };

  const withSession = async (name: CallerName, tenant: Tenant): Promise<Caller> => ({ name, tenant, ...(await openSession(tenant)) });
  callers = [
    { name: 'none', tenant: undefined, cookie: undefined, csrfToken: undefined },
    await withSession('revoked', revoked),
    await withSession('otherOrg', other),
    await withSession('member', member),
    await withSession('admin', owner),
    await withSession('operator', operator),
  ];
  await tenancy.revokeToken(extra.token);

  const threadId: string = (await t.as(owner, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'Owner thread' } })).json().id;
  const partial = { owner, member, threadId } as Fixtures;
  const batchId = await queuedBatch(partial);
  const documentId = await ownerDocument(partial);
  await failedStep(owner, threadId);
  const { alert } = await t.container.repositories.alerts.raise({
    rule: 'queue_backlog',
    subject: 'rag-processing',
    severity: 'warning',
    message: 'rag-processing has 1500 jobs waiting',
    value: 1500,
    threshold: 1000,
  });
  fixtures = { owner, member, threadId, batchId, documentId, alertId: alert.id, boardJobId: 'matrix-board-job' };
  for (const id of [owner.orgId, owner.userId, member.userId, threadId, batchId, documentId]) ownerIds.add(id);
});
afterAll(() => t.close());

describe('authorization matrix', () => {
  it('has an expectation for every registered route, and no stale ones', () => {
    const registered = t.app.routeTable.map((r) => `${r.method} ${r.url}`);
    expect(new Set(registered).size).toBe(registered.length);
    expect(registered.filter((route) => !(route in EXPECTED)), 'routes without an entry in EXPECTED').toEqual([]);
    expect(Object.keys(EXPECTED).filter((route) => !registered.includes(route)), 'entries for routes that no longer exist').toEqual([]);
  });

  // One test per route (the first test holds EXPECTED's keys to the route table).
  for (const route of Object.keys(EXPECTED)) {
    it(`${route}: every caller as expected, no owner ids shown to others`, async () => {
      const entry = EXPECTED[route]!;
      const mismatches: string[] = [];
      const leaks: string[] = [];
      for (const caller of callers) {
        await resetBoardObjects();
        const { res, sent } = await call(route, caller, fixtures);
        cells++;
        const expected = entry.expect[caller.name];
        if (res.statusCode !== expected) mismatches.push(`as ${caller.name}: ${res.statusCode} (expected ${expected}) ${res.body.slice(0, 200)}`);
        const foreign = caller.name === 'none' || caller.name === 'revoked' || caller.name === 'otherOrg' || (caller.name === 'operator' && !entry.systemWide);
        if (!foreign) {
          if ((caller.name === 'member' || caller.name === 'admin') && [...ownerIds].some((id) => !sent.includes(id) && res.body.includes(id))) ownerAnswersWithIds++;
          continue;
        }
        for (const id of ownerIds) {
          if (!sent.includes(id) && res.body.includes(id)) leaks.push(`as ${caller.name} shows ${id}`);
        }
      }
      expect(mismatches).toEqual([]);
      expect(leaks).toEqual([]);
    });
  }

  it('covered every route with every caller', () => {
    expect(cells).toBe(t.app.routeTable.length * CALLERS.length);
    expect(ownerAnswersWithIds).toBeGreaterThan(5);
    process.stdout.write(`authorization matrix: ${t.app.routeTable.length} routes × ${CALLERS.length} callers = ${cells} cells\n`);
  });
});
