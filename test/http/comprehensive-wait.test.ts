import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/adapters/postgres/client.js';
import { CATALOG } from '../../src/engine/catalog.js';
import { createRunsRepository } from '../../src/adapters/postgres/run-store/index.js';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

const LATENCY_MS = 1_200;

describe('wait on /comprehensive, woken when the run finishes', () => {
  let fake: FakeOpenAiServer;
  let t: TestApp;
  let tenant: Tenant;

  beforeAll(async () => {
    fake = await startFakeOpenAi({ latencyMs: LATENCY_MS });
    t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url }, { workers: true });
    tenant = await t.tenant();
  });

  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it('answers 200 with the results as soon as the run finishes, reading the run a few times rather than polling it', async () => {
    const runs = t.container.repositories.runs;
    const original = runs.getWithSteps;
    let reads = 0;
    runs.getWithSteps = (...args) => {
      reads++;
      return original(...args);
    };
    try {
      const started = Date.now();
      const res = await t.as(tenant, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'Draft a short note about our launch', wait: 20 } });
      const elapsed = Date.now() - started;
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.status).toBe('accepted');
      expect(body.results).toMatchObject({ batchId: body.data.tracking.batchId, status: 'completed' });
      expect(body.results.finishedAt).toEqual(expect.any(String));
      expect(elapsed).toBeGreaterThanOrEqual(LATENCY_MS);
      // A poll every 20–250 ms would read about ten times across the LLM's latency; the waiter
      // reads once before it sleeps, once when its listener connects, and once when woken.
      expect(reads).toBeLessThanOrEqual(3);
      expect(t.container.waits.activeWaits(tenant.orgId)).toBe(0);
    } finally {
      runs.getWithSteps = original;
    }
  });
});

describe('wait on /comprehensive without workers (runs stay open until finished from outside)', () => {
  let t: TestApp;
  let tenant: Tenant;
  let other: Tenant;
  let elsewhere: ReturnType<typeof openDatabase>;

  beforeAll(async () => {
    t = await createTestApp({ COMPREHENSIVE_MAX_WAITS_PER_ORG: '2' });
    tenant = await t.tenant();
    other = await t.tenant();
    // Another process's connection: a run finished there must wake a waiter here.
    elsewhere = openDatabase(t.database.url, { poolMax: 2 });
  });

  afterAll(async () => {
    await elsewhere?.close();
    await t?.close();
  });

  const comprehensive = (who: Tenant, wait: number) =>
    t.as(who, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'What is in our crisis playbook?', wait } });

  async function openBatches(who: Tenant, count: number): Promise<string[]> {
    return eventually(async () => {
      const { rows } = await t.container.database.pool.query('select id from runs where org_id = $1 and finished_at is null order by created_at', [who.orgId]);
      return rows.length >= count ? rows.map((row) => row.id as string) : undefined;
    }, 10_000, `${count} open runs`);
  }

  async function threadCount(who: Tenant): Promise<number> {
    const { rows } = await t.container.database.pool.query('select count(*)::int as n from threads where org_id = $1', [who.orgId]);
    return rows[0].n;
  }

  it('caps concurrent waits per organization with 429 too_many_waits and Retry-After, creating nothing; a run finished elsewhere wakes its waiter', async () => {
    const first = comprehensive(tenant, 30);
    const second = comprehensive(tenant, 30);
    await eventually(async () => t.container.waits.activeWaits(tenant.orgId) === 2, 10_000, 'two waits');
    // A wait is reserved before its run (and new thread) is written: count once both are.
    await openBatches(tenant, 2);
    const threadsBefore = await threadCount(tenant);

    const refused = await comprehensive(tenant, 30);
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({ error: { code: 'too_many_waits', message: expect.stringContaining('2 requests waiting') } });
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(await threadCount(tenant)).toBe(threadsBefore);
    // Without `wait` the endpoint accepts as before; another organization has its own cap.
    expect((await t.as(tenant, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'no wait' } })).statusCode).toBe(202);
    const otherWait = comprehensive(other, 0.2);
    expect((await otherWait).statusCode).toBe(202);

    const open = await openBatches(tenant, 3);
    const runsElsewhere = createRunsRepository(elsewhere.db, elsewhere.pool, CATALOG);
    const started = Date.now();
    for (const id of open) await runsElsewhere.finish(id, 'cancelled', { code: 'cancelled', message: 'finished by another process' });
    const [a, b] = await Promise.all([first, second]);
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const res of [a, b]) {
      expect(res.statusCode).toBe(200);
      expect(res.json().results).toMatchObject({ status: 'cancelled', finishedAt: expect.any(String) });
    }
    expect(t.container.waits.activeWaits(tenant.orgId)).toBe(0);
  });

  it('answers 202 with the unfinished results when the wait runs out', async () => {
    const res = await comprehensive(tenant, 0.3);
    expect(res.statusCode).toBe(202);
    expect(res.json().results).toMatchObject({ finishedAt: null });
  });

  it('still wakes the waiter after its LISTEN connection was cut', async () => {
    // Runs left open by the tests before: the wait's own run is one more (its slot is reserved before it is written).
    const before = (await openBatches(tenant, 0)).length;
    const waiting = comprehensive(tenant, 30);
    await eventually(async () => t.container.waits.activeWaits(tenant.orgId) === 1, 10_000, 'a wait');
    const open = await openBatches(tenant, before + 1);
    const admin = new pg.Client({ connectionString: t.database.url });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = 'honeyjar-listen'",
      );
      expect(rowCount).toBe(1);
      // Listening again (a new backend) before the run finishes, or the reconnect's re-read finds it finished.
      const runsElsewhere = createRunsRepository(elsewhere.db, elsewhere.pool, CATALOG);
      for (const id of open) await runsElsewhere.finish(id, 'cancelled', { code: 'cancelled', message: 'after the cut' });
    } finally {
      await admin.end();
    }
    const res = await waiting;
    expect(res.statusCode).toBe(200);
    expect(res.json().results.status).toBe('cancelled');
  });

  it('stops waiting when the client disconnects', async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const body = JSON.stringify({ message: 'A question I will not wait for', wait: 30 });
    const client = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/v1/chat/comprehensive',
      headers: { ...tenant.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.on('error', () => undefined);
    client.end(body);
    await eventually(async () => t.container.waits.activeWaits(tenant.orgId) === 1, 10_000, 'the wait to start');
    client.destroy();
    await closed;
    await eventually(async () => t.container.waits.activeWaits(tenant.orgId) === 0, 5_000, 'the wait to end');
  });
});
