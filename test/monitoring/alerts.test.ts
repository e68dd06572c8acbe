import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertsOfRule } from '../../src/adapters/postgres/repositories/alerts.repository.js';
import { queueNames } from '../../src/adapters/bullmq/job-options.js';
import { createAlertsService, type AlertsServiceDeps } from '../../src/domain/monitoring/alerts.service.js';
import { createStalledJobs } from '../../src/domain/monitoring/stalled-jobs.js';
import { createRocketReachClient } from '../../src/domain/stages/rocketreach/rocketreach.client.js';
import { createLogger } from '../../src/logger.js';
import { startFakeRocketReach, type FakeRocketReach } from '../fakes/rocketreach.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

interface Delivery {
  event: 'raised' | 'resolved';
  alert: Record<string, unknown> & { id: string; rule: string; subject: string };
  receivedAt: number;
}

/** A loopback webhook receiver; `failNext(n)` answers 500 to the next n deliveries. */
async function startWebhook() {
  const deliveries: Delivery[] = [];
  let attempts = 0;
  let failures = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      attempts++;
      if (failures > 0) {
        failures--;
        res.writeHead(500).end();
        return;
      }
      deliveries.push({ ...JSON.parse(Buffer.concat(chunks).toString('utf8')), receivedAt: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/alerts`,
    deliveries,
    attempts: () => attempts,
    failNext: (n: number) => {
      failures = n;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const QUEUE = 'intent-classification';
const iso = (date: Date | string | null | undefined) => (date ? new Date(date).toISOString() : '—');

let hook: Awaited<ReturnType<typeof startWebhook>>;
let t: TestApp;
let admin: Tenant;
let otherAdmin: Tenant;
let member: Tenant;
/** Two system operators, each of an organization of its own. */
let operator: Tenant;
let secondOperator: Tenant;

beforeAll(async () => {
  hook = await startWebhook();
  // The schedule is off (interval 0): each test calls evaluate() itself.
  t = await createTestApp({ ALERTS_QUEUE_BACKLOG: '2', ALERTS_INTERVAL_MS: '0', ALERTS_WEBHOOK_URL: hook.url }, { workers: true });
  admin = await t.tenant('Alerts Org');
  otherAdmin = await t.tenant('Other Alerts Org');
  operator = await t.tenant('Alerts Operations', 'ops@alerts-operations.test', { operator: true });
  secondOperator = await t.tenant('Alerts Night Shift', 'ops@alerts-night-shift.test', { operator: true });
  const tenancy = t.container.repositories.tenancy;
  const user = await tenancy.upsertUser('member@alerts.test');
  await tenancy.setMembership(admin.orgId, user.id, 'member');
  const { token } = await tenancy.createToken(user.id);
  member = { orgId: admin.orgId, userId: user.id, token, headers: { authorization: `Bearer ${token}`, 'x-organization-id': admin.orgId } };
});

afterAll(async () => {
  await t?.close();
  await hook?.close();
});

const alerts = () => t.queueSystem!.alerts;
const intentWorker = () => t.queueSystem!.workers!.workers.get('intent')!;

async function queueCounts() {
  return t.container.producer.counts();
}

/** Jobs ready and not taken: with fairness on (the default) they wait as prioritized. */
const ready = (c: { waiting: number; prioritized: number }) => c.waiting + c.prioritized;

async function sendQueued(threadId: string, content: string): Promise<string> {
  const res = await t.as(admin, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
  expect(res.statusCode).toBe(202);
  return res.json().data.tracking.batchId;
}

describe('alerts', () => {
  it('raises a backlog alert once, refreshes it, records its acknowledgement and resolves it when the backlog drains', async () => {
    await intentWorker().pause();
    const threadId = (await t.as(admin, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'alerts' } })).json().id;
    const batches: string[] = [];
    for (let i = 0; i < 4; i++) batches.push(await sendQueued(threadId, `backlog message ${i}`));
    await eventually(async () => ready((await queueCounts())[QUEUE]!) >= 4, 10_000, 'four waiting intent jobs');

    // 1. Raised.
    const first = await alerts().evaluate();
    expect(first.status).toBe('evaluated');
    const raised = first.raised.find((a) => a.rule === 'queue_backlog' && a.subject === QUEUE);
    expect(raised).toMatchObject({ status: 'open', severity: 'critical', value: 4, threshold: 2, acknowledgedAt: null });
    expect(raised!.message).toContain('4 jobs waiting');
    await alerts().whenDelivered();
    expect(hook.deliveries.filter((d) => d.alert.id === raised!.id).map((d) => d.event)).toEqual(['raised']);

    // 2. Persisting: the same alert, refreshed — no duplicate.
    batches.push(await sendQueued(threadId, 'one more'));
    await eventually(async () => ready((await queueCounts())[QUEUE]!) >= 5, 10_000, 'five waiting intent jobs');
    const second = await alerts().evaluate();
    expect(second.raised.filter((a) => a.rule === 'queue_backlog')).toEqual([]);
    const refreshed = second.updated.find((a) => a.id === raised!.id);
    expect(refreshed).toMatchObject({ status: 'open', value: 5 });
    expect(refreshed!.lastSeenAt.getTime()).toBeGreaterThan(raised!.lastSeenAt.getTime());
    expect(refreshed!.firstSeenAt.getTime()).toBe(raised!.firstSeenAt.getTime());
    const stored = (await alertsOfRule(t.container.database.db, 'queue_backlog')).filter((a) => a.subject === QUEUE);
    expect(stored).toHaveLength(1);
    await alerts().whenDelivered();
    expect(hook.deliveries.filter((d) => d.alert.id === raised!.id)).toHaveLength(1);

    // 3. Listed for admins and operators, not members.
    const list = await t.as(admin, { method: 'GET', url: '/api/v1/chat/system/alerts?status=open&acknowledged=false' });
    expect(list.statusCode).toBe(200);
    expect(list.json().alerts.map((a: { id: string }) => a.id)).toContain(raised!.id);
    expect(list.json().summary).toMatchObject({ open: expect.any(Number), acknowledged: 0, unacknowledged: list.json().summary.open });
    expect((await t.as(member, { method: 'GET', url: '/api/v1/chat/system/alerts' })).statusCode).toBe(403);
    expect((await t.as(admin, { method: 'GET', url: '/api/v1/chat/system/alerts?status=closed' })).statusCode).toBe(400);

    // 4. Acknowledged by system operators only: who and when; unknown ids are 404; each one is recorded, the first kept.
    const ackUrl = `/api/v1/chat/system/alerts/${raised!.id}/acknowledge`;
    for (const caller of [member, admin, otherAdmin]) {
      const refused = await t.as(caller, { method: 'POST', url: ackUrl });
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.code).toBe('operator_required');
    }
    expect((await t.as(operator, { method: 'POST', url: '/api/v1/chat/system/alerts/00000000-0000-4000-8000-000000000000/acknowledge' })).statusCode).toBe(404);
    const malformed = await t.as(operator, { method: 'POST', url: '/api/v1/chat/system/alerts/not-an-id/acknowledge' });
    expect(malformed.statusCode).toBe(404);
    expect(malformed.json().error.code).toBe('not_found');
    const ack = await t.as(operator, { method: 'POST', url: ackUrl });
    expect(ack.statusCode).toBe(200);
    expect(ack.json()).toMatchObject({ id: raised!.id, status: 'open', acknowledged: true, acknowledgedBy: operator.userId });
    const acknowledgedAt: string = ack.json().acknowledgedAt;
    expect(ack.json().acknowledgements).toEqual([{ userId: operator.userId, orgId: operator.orgId, at: acknowledgedAt }]);
    expect(Date.parse(acknowledgedAt)).toBeGreaterThanOrEqual(raised!.firstSeenAt.getTime());
    const again = await t.as(secondOperator, { method: 'POST', url: ackUrl });
    expect(again.statusCode).toBe(200);
    // The first acknowledgement stays the alert's; the second one is listed after it.
    expect(again.json()).toMatchObject({ acknowledged: true, acknowledgedAt, acknowledgedBy: operator.userId });
    expect(again.json().acknowledgements).toEqual([
      { userId: operator.userId, orgId: operator.orgId, at: acknowledgedAt },
      { userId: secondOperator.userId, orgId: secondOperator.orgId, at: expect.any(String) },
    ]);
    const row = await t.container.repositories.alerts.get(raised!.id);
    expect(row).toMatchObject({ acknowledgedBy: operator.userId, acknowledgedOrg: operator.orgId });
    const { rows: recorded } = await t.database.pool.query('select user_id, org_id from alert_acknowledgements where alert_id = $1 order by acknowledged_at', [raised!.id]);
    expect(recorded).toEqual([
      { user_id: operator.userId, org_id: operator.orgId },
      { user_id: secondOperator.userId, org_id: secondOperator.orgId },
    ]);
    // An organization admin sees that it was acknowledged, twice, but not by whom (users of other organizations).
    const acked = await t.as(admin, { method: 'GET', url: '/api/v1/chat/system/alerts?acknowledged=true' });
    expect(acked.json().alerts.map((a: { id: string }) => a.id)).toEqual([raised!.id]);
    expect(acked.json().alerts[0]).toMatchObject({ acknowledgedBy: null, acknowledgedAt });
    expect(acked.json().alerts[0].acknowledgements).toEqual([
      { userId: null, orgId: null, at: acknowledgedAt },
      { userId: null, orgId: null, at: expect.any(String) },
    ]);
    expect(acked.json().summary).toMatchObject({ acknowledged: 1 });
    const seenByOperator = (await t.as(secondOperator, { method: 'GET', url: '/api/v1/chat/system/alerts?acknowledged=true' })).json().alerts[0];
    expect(seenByOperator.acknowledgements.map((a: { userId: string }) => a.userId)).toEqual([operator.userId, secondOperator.userId]);

    // 5. Resolved when the backlog drains.
    intentWorker().resume();
    await eventually(
      async () => {
        const docs = await Promise.all(batches.map((b) => t.as(admin, { method: 'GET', url: `/api/v1/chat/batch/${b}/results` }).then((r) => r.json())));
        return docs.every((d) => d.finishedAt);
      },
      30_000,
      'the backlog to be processed',
    );
    await eventually(async () => Object.values(await queueCounts()).every((c) => ready(c) + c.delayed === 0), 10_000, 'empty queues');
    const third = await alerts().evaluate();
    const resolved = third.resolved.find((a) => a.id === raised!.id);
    expect(resolved).toMatchObject({ status: 'resolved', acknowledgedBy: operator.userId });
    expect(resolved!.resolvedAt!.getTime()).toBeGreaterThanOrEqual(refreshed!.lastSeenAt.getTime());
    await alerts().whenDelivered();
    const events = hook.deliveries.filter((d) => d.alert.id === raised!.id);
    expect(events.map((d) => d.event)).toEqual(['raised', 'resolved']);
    expect(events[1]!.alert).toMatchObject({ status: 'resolved', rule: 'queue_backlog', subject: QUEUE });
    // The window statistics behind the stage and provider rules read these runs (offline replies made no provider call).
    const stages = await t.container.repositories.alerts.stageStats(600_000);
    expect(stages[QUEUE]).toMatchObject({ stage: 'intent', finished: 5, failed: 0, timed: 5 });
    expect(stages[QUEUE]!.p95Ms).toBeGreaterThan(0);
    expect(await t.container.repositories.alerts.providerStats(600_000)).toEqual({});
    const fourth = await alerts().evaluate();
    expect(fourth.resolved).toEqual([]);
    expect(fourth.raised.filter((a) => a.rule === 'queue_backlog')).toEqual([]);
    const closed = await t.as(admin, { method: 'GET', url: '/api/v1/chat/system/alerts?status=resolved' });
    expect(closed.json().alerts[0]).toMatchObject({ id: raised!.id, status: 'resolved', acknowledged: true });

    console.log(
      [
        `alert ${raised!.id} (${raised!.rule} on ${raised!.subject}, threshold ${raised!.threshold}):`,
        `  raised        ${iso(raised!.firstSeenAt)}  value ${raised!.value}, severity ${raised!.severity}; webhook received ${iso(new Date(events[0]!.receivedAt))}`,
        `  still open    ${iso(refreshed!.lastSeenAt)}  value ${refreshed!.value} (same row, last_seen_at updated)`,
        `  acknowledged  ${acknowledgedAt}  by operator ${operator.userId}, then again by ${secondOperator.userId}`,
        `  resolved      ${iso(resolved!.resolvedAt)}  webhook received ${iso(new Date(events[1]!.receivedAt))}`,
      ].join('\n'),
    );
  });

  it('sends a webhook at most twice per event when it fails, and keeps the alert', async () => {
    const deps = baseDeps({
      queueHealth: async () => ({
        'fake-queue': { counts: { waiting: 9 }, oldestWaitingAgeMs: 1_000, lastFetchAgeMs: 10, workersSeen: 1, paused: false, rateLimitTtlMs: 0 },
      }),
    });
    const service = createAlertsService(deps);
    hook.failNext(5);
    const before = hook.attempts();
    const result = await service.evaluate();
    const alert = result.raised.find((a) => a.subject === 'fake-queue');
    expect(alert).toMatchObject({ rule: 'queue_backlog', value: 9 });
    await service.whenDelivered();
    expect(hook.attempts() - before).toBe(2);
    hook.failNext(0);
    // The condition clears: resolved, and this webhook goes through.
    const cleared = createAlertsService({ ...deps, queueHealth: async () => ({}) });
    const after = await cleared.evaluate();
    expect(after.resolved.map((a) => a.id)).toContain(alert!.id);
    await cleared.whenDelivered();
    expect(hook.deliveries.filter((d) => d.alert.id === alert!.id).map((d) => d.event)).toEqual(['resolved']);
  });

  it('keeps a PostgreSQL outage in memory, notifies at once and stores it when PostgreSQL is back', async () => {
    let down = true;
    const repository = t.container.repositories.alerts;
    const service = createAlertsService(
      baseDeps({
        repository: { ...repository, ping: () => (down ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')) : repository.ping()) },
        queueHealth: async () => ({}),
      }),
    );
    const during = await service.evaluate();
    expect(during.status).toBe('postgres_down');
    expect(during.conditions[0]).toMatchObject({ rule: 'postgres_unreachable', severity: 'critical' });
    const pending = service.pendingOutage();
    expect(pending).toBeDefined();
    expect(await alertsOfRule(t.container.database.db, 'postgres_unreachable')).toEqual([]);
    await service.whenDelivered();
    expect(hook.deliveries.filter((d) => d.alert.id === pending!.id).map((d) => d.event)).toEqual(['raised']);
    await service.evaluate();
    expect(service.pendingOutage()!.lastSeenAt.getTime()).toBeGreaterThanOrEqual(pending!.lastSeenAt.getTime());

    down = false;
    const back = await service.evaluate();
    expect(back.status).toBe('evaluated');
    expect(service.pendingOutage()).toBeUndefined();
    const [stored] = await alertsOfRule(t.container.database.db, 'postgres_unreachable');
    expect(stored).toMatchObject({ id: pending!.id, status: 'resolved', severity: 'critical' });
    expect(stored!.firstSeenAt.getTime()).toBe(pending!.firstSeenAt.getTime());
    expect(stored!.resolvedAt).not.toBeNull();
    await service.whenDelivered();
    expect(hook.deliveries.filter((d) => d.alert.id === pending!.id).map((d) => d.event)).toEqual(['raised', 'resolved']);
  });

  it('checks the RocketReach balance at most once per period and raises credits low', async () => {
    const fake: FakeRocketReach = await startFakeRocketReach({ lookupCredits: 10 });
    try {
      const service = createAlertsService(
        baseDeps({
          queueHealth: async () => ({}),
          rocketreach: createRocketReachClient({ apiKey: fake.apiKey, baseUrl: fake.url }),
        }),
      );
      const first = await service.evaluate();
      expect(first.raised.find((a) => a.rule === 'rocketreach_credits_low')).toMatchObject({ subject: 'rocketreach', value: 10, threshold: 100, severity: 'warning' });
      const second = await service.evaluate();
      expect(second.updated.find((a) => a.rule === 'rocketreach_credits_low')).toBeDefined();
      expect(fake.requests.filter((r) => r.path.endsWith('/account/'))).toHaveLength(1);
    } finally {
      await fake.close();
    }
  });

  it('counts stalled jobs across processes through the coordination store', async () => {
    const stalled = createStalledJobs({ coordination: t.container.coordination, prefix: t.container.config.queue.prefix });
    await stalled.record('rag-processing', 'run-1.rag');
    await stalled.record('rag-processing', 'run-2.rag');
    expect(await stalled.count(['rag-processing', 'openai-processing'], 60_000)).toEqual({ 'rag-processing': 2, 'openai-processing': 0 });
  });
});

function baseDeps(overrides: Partial<AlertsServiceDeps>): AlertsServiceDeps {
  return {
    repository: t.container.repositories.alerts,
    queues: queueNames(t.container.config.catalog),
    queueHealth: async () => ({}),
    coordination: t.container.coordination,
    stalled: createStalledJobs({ coordination: t.container.coordination, prefix: t.container.config.queue.prefix }),
    config: t.container.config.alerts,
    prefix: t.container.config.queue.prefix,
    logger: createLogger('silent'),
    ...overrides,
  };
}
