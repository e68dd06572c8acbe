import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';
import { startQueueSystem } from '../../src/queue/queue-system.js';
import { createLogger } from '../../src/logger.js';

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

    // Another organization is still accepted, behind everyone's open runs.
    const globexThread = await thread(globex);
    const first = await queued(globex, globexThread, 'Globex question');
    expect(first.statusCode).toBe(202);
    expect(first.json().data.tracking.queuePosition).toEqual({ organization: 0, overall: 3 });
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
