import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';
import { startQueueSystem } from '../../src/queue/queue-system.js';
import { createLogger } from '../../src/logger.js';
import { createBacklogRepository } from '../../src/adapters/postgres/repositories/backlog.repository.js';
import { stageOrder } from '../../src/engine/dag.js';
import { stagesFor } from '../../src/domain/chat/chat.service.js';
import { randomUUID } from 'node:crypto';

/*
 * No workers run here: every accepted message stays open, so the backlog is exactly what the test
 * sent. The count is read once (BACKLOG_REFRESH_MS is longer than the test) and this process's
 * accepts are added to it, so the figures are deterministic.
 */
let t: TestApp;
let acme: Tenant;
let globex: Tenant;
let initech: Tenant;
let operator: Tenant;

beforeAll(async () => {
  t = await createTestApp({ BACKLOG_MAX_PER_ORG: '3', BACKLOG_MAX_TOTAL: '5', BACKLOG_REFRESH_MS: '10000', ALERTS_INTERVAL_MS: '0' });
  acme = await t.tenant('Acme Backlog');
  globex = await t.tenant('Globex Backlog');
  initech = await t.tenant('Initech Backlog');
  operator = await t.tenant('Operators Backlog', 'ops@backlog.test', { operator: true });
});
afterAll(async () => {
  await t.close();
});

async function thread(tenant: Tenant): Promise<string> {
  return (await t.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'backlog' } })).json().id;
}

function queued(tenant: Tenant, threadId: string, content: string, headers: Record<string, string> = {}) {
  return t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content }, headers });
}

describe('backpressure', () => {
  it('places each accepted message behind the open runs, with an estimate that grows with them, then refuses beyond the limits', async () => {
    const acmeThread = await thread(acme);
    const placed: Array<{ organization: number; overall: number }> = [];
    const estimates: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await queued(acme, acmeThread, `Draft statement ${i}`);
      expect(res.statusCode).toBe(202);
      const { tracking, immediate } = res.json().data;
      placed.push(tracking.queuePosition);
      estimates.push(Date.parse(tracking.estimatedCompletion) - Date.parse(immediate.timestamp));
    }
    expect(placed).toEqual([
      { organization: 0, overall: 0 },
      { organization: 1, overall: 1 },
      { organization: 2, overall: 2 },
    ]);
    expect(estimates[0]).toBeGreaterThan(0);
    expect(estimates[1]).toBeGreaterThan(estimates[0]!);
    expect(estimates[2]).toBeGreaterThan(estimates[1]!);

    // Acme has 3 open runs: its next message is refused on every accepting endpoint, nothing written.
    const refused = await queued(acme, acmeThread, 'One more');
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe('backlog_full');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const blocking = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${acmeThread}/messages`, payload: { content: 'Blocking one' } });
    expect(blocking.statusCode).toBe(429);
    expect(blocking.json().error.code).toBe('backlog_full');
    const comprehensive = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'Comprehensive one' } });
    expect(comprehensive.statusCode).toBe(429);
    expect(comprehensive.json().error.code).toBe('backlog_full');
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${acmeThread}/messages` })).json().messages;
    expect(messages).toHaveLength(3);

    // Another organization is still accepted, behind everyone's open runs; under fairness (the
    // default) it is served next, so its estimate is Acme's first one's: nothing of its own ahead.
    const globexThread = await thread(globex);
    const first = await queued(globex, globexThread, 'Globex question');
    expect(first.statusCode).toBe(202);
    expect(first.json().data.tracking.queuePosition).toEqual({ organization: 0, overall: 3 });
    const globexEstimate = Date.parse(first.json().data.tracking.estimatedCompletion) - Date.parse(first.json().data.immediate.timestamp);
    expect(globexEstimate).toBe(estimates[0]);
    expect((await queued(globex, globexThread, 'Globex follow-up')).statusCode).toBe(202);

    // Five open across the system: every organization is refused with 503, Initech included.
    const overloaded = await queued(initech, await thread(initech), 'Initech question');
    expect(overloaded.statusCode).toBe(503);
    expect(overloaded.json().error.code).toBe('overloaded');
    expect(Number(overloaded.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    // Health and metrics say that messages are being refused.
    const health = await t.app.inject({ method: 'GET', url: '/api/v1/chat/system/health' });
    expect(health.json().status).toBe('degraded');
    expect(health.json().checks.backlog).toEqual({ status: 'degraded', shedding: true });
    const detailed = await t.as(operator, { method: 'GET', url: '/api/v1/chat/system/health/detailed' });
    expect(detailed.json().checks.backlog).toMatchObject({
      shedding: true,
      shed: { organization: 3, overall: 1 },
      open: 5,
      organizationsAtLimit: 1,
      limits: { maxPerOrg: 3, maxTotal: 5 },
      lastShedAt: expect.any(String),
    });
    const metrics = await t.as(operator, { method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain('honeyjar_accepts_shed_total{scope="organization"} 3');
    expect(metrics.body).toContain('honeyjar_accepts_shed_total{scope="overall"} 1');
    expect(metrics.body).toContain('honeyjar_backlog_open_runs 5');

    // The alert evaluator counts afresh and raises both conditions (no tenant named).
    const queueSystem = await startQueueSystem(t.container, [], createLogger('silent'));
    try {
      const pass = await queueSystem.alerts.evaluate();
      const shedding = pass.conditions.filter((c) => c.rule === 'backlog_shedding');
      expect(shedding.map((c) => [c.subject, c.severity, c.value]).sort()).toEqual([
        ['organizations', 'warning', 1],
        ['overall', 'critical', 5],
      ]);
      expect(JSON.stringify(shedding)).not.toContain(acme.orgId);
    } finally {
      await queueSystem.close(1_000);
    }
  });

  it('refuses a request whose Idempotency-Key was never accepted while the backlog is full', async () => {
    // The system is at its limit from the test above; this key was not used: refused.
    const threadId = await thread(acme);
    const fresh = await queued(acme, threadId, 'Keyed', { 'idempotency-key': 'never-accepted' });
    expect(fresh.statusCode).toBe(503);
  });
});

describe('backpressure, replays', () => {
  let r: TestApp;
  afterAll(async () => {
    await r?.close();
  });

  it('replays an accepted request over the limit, and refuses a different one with that key', async () => {
    r = await createTestApp({ BACKLOG_MAX_PER_ORG: '1', BACKLOG_REFRESH_MS: '10000' });
    const tenant = await r.tenant('Replay Backlog');
    const threadId = (await r.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'r' } })).json().id;
    const send = (content: string) =>
      r.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content }, headers: { 'idempotency-key': 'k-1' } });
    const first = await send('The first request');
    expect(first.statusCode).toBe(202);
    const again = await send('The first request');
    expect(again.statusCode).toBe(202);
    expect(again.json().data.tracking.batchId).toBe(first.json().data.tracking.batchId);
    const other = await send('Another request');
    expect(other.statusCode).toBe(422);
  });
});

describe('the estimate\'s calibration, read from PostgreSQL', () => {
  let c: TestApp;
  afterAll(async () => {
    await c?.close();
  });

  it('stores the model\'s estimate with the run and reads back how the finished runs compare with it', async () => {
    c = await createTestApp({ BACKLOG_REFRESH_MS: '10000' });
    const tenant = await c.tenant('Calibration Backlog');
    const threadId = (await c.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'c' } })).json().id;
    const { catalog } = c.container.config;
    const replyStage = stageOrder(catalog).find((stage) => catalog[stage].reply)!;
    const source = createBacklogRepository(c.database.pool, replyStage);
    const first = await source.read(undefined);
    expect(first.calibration).toEqual({ runs: 0, meanLogRatio: null });

    // Two runs estimated at 1 s that took 0.5 s and 4 s, and one with no estimate.
    const runs: Array<{ id: string; estimate?: number; tookMs: number }> = [
      { id: randomUUID(), estimate: 1_000, tookMs: 500 },
      { id: randomUUID(), estimate: 1_000, tookMs: 4_000 },
      { id: randomUUID(), tookMs: 100 },
    ];
    for (const run of runs) {
      const created = await c.container.repositories.runs.create({
        id: run.id,
        orgId: tenant.orgId,
        threadId,
        userId: tenant.userId,
        source: 'queued',
        driver: 'queue',
        content: 'calibrate',
        stages: stagesFor(catalog, {}),
        ...(run.estimate === undefined ? {} : { modelWaitMs: run.estimate }),
      });
      expect(created.kind).toBe('created');
    }
    const stored = await c.database.pool.query('select id, model_wait_ms from runs where id = any($1::uuid[])', [runs.map((r) => r.id)]);
    expect(Object.fromEntries(stored.rows.map((row) => [row.id, row.model_wait_ms]))).toEqual(Object.fromEntries(runs.map((r) => [r.id, r.estimate ?? null])));

    // Their replies are stored now, each `tookMs` after its accept.
    for (const run of runs) {
      await c.database.pool.query(
        `with accepted as (update runs set created_at = now() - make_interval(secs => $4::float8 / 1000) where id = $1 returning id)
         insert into run_steps (run_id, stage, org_id, job_id, queue, status, max_attempts, finished_at)
         select id, $2, $3, id::text || '.' || $2, 'q', 'completed', 1, now() from accepted`,
        [run.id, replyStage, tenant.orgId, run.tookMs],
      );
    }
    const next = await source.read(first.until);
    expect(next.calibration?.runs).toBe(2);
    // ln(0.5) and ln(4): their mean is ln(√2).
    expect(next.calibration?.meanLogRatio).toBeCloseTo(Math.log(Math.SQRT2), 2);
    // The next reading's interval starts where this one ended: they are not counted again.
    expect((await source.read(next.until)).calibration).toEqual({ runs: 0, meanLogRatio: null });
  });
});
