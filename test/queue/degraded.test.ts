import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createReconciler } from '../../src/engine/reconciler.js';
import { advisoryLead, RECONCILER_LOCK_ID } from '../../src/adapters/postgres/advisory-lock.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';
import { freePort } from '../support/ports.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';

/** A Redis server of this test's own, so that it can be started late (and stopped). */
let redisPort: number;
let t: TestApp;
let acme: Tenant;

beforeAll(async () => {
  redisPort = await freePort();
  // Redis is down when the server starts.
  t = await createTestApp({ REDIS_URL: `redis://127.0.0.1:${redisPort}` }, { workers: true });
  acme = await t.tenant('Degraded org');
});
afterAll(async () => {
  await t?.close();
  await stopAllRedisServers();
});

async function send(content: string) {
  const threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: {} })).json().id;
  return t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
}

function finished(batchId: string) {
  return eventually(async () => {
    const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
    return doc.finishedAt ? doc : undefined;
  }, 20_000, 'the batch to finish');
}

async function driverOf(batchId: string): Promise<string> {
  return (await t.database.pool.query('select driver from runs where id = $1', [batchId])).rows[0].driver;
}

describe('graceful degradation', () => {
  it('starts and serves with Redis unreachable: 202 with degraded, processed in-process', async () => {
    const res = await send('Draft a tweet about our launch');
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ status: 'accepted', degraded: true });
    const batchId = res.json().data.tracking.batchId;
    expect((await finished(batchId)).status).toBe('completed');
    expect(await driverOf(batchId)).toBe('inline');
    // The organization's figures come from PostgreSQL; the queues' counts (operators) need Redis.
    const stats = await t.as(acme, { method: 'GET', url: '/api/v1/chat/jobs/queue-stats' });
    expect(stats.statusCode).toBe(200);
    expect(stats.json()).toMatchObject({ scope: 'organization', organization: { orgId: acme.orgId } });
    expect(stats.json().organization.runs.byStatus.completed).toBeGreaterThanOrEqual(1);
    const operator = await t.tenant('Degraded Operations', 'ops@degraded.test', { operator: true });
    const system = await t.as(operator, { method: 'GET', url: '/api/v1/chat/jobs/queue-stats' });
    expect(system.statusCode).toBe(503);
    expect(system.json().error.code).toBe('queue_unavailable');
  });

  it('goes back to the queues when Redis returns, without a restart', async () => {
    await startRedisServer({ port: redisPort });
    await eventually(async () => t.container.producer.available(), 15_000, 'the producer to reconnect');
    const res = await send('What is a boilerplate?');
    expect(res.json().degraded).toBeUndefined();
    const batchId = res.json().data.tracking.batchId;
    // Processed by the workers, which reconnected on their own.
    expect((await finished(batchId)).status).toBe('completed');
    expect(await driverOf(batchId)).toBe('queue');
  });

  it('re-drives a run whose jobs were lost (Redis flushed)', async () => {
    const workers = t.queueSystem!.workers!;
    await Promise.all([...workers.workers.values()].map((worker) => worker.pause()));
    try {
      const res = await send('How should we answer a reporter on deadline?');
      const batchId = res.json().data.tracking.batchId;
      await t.container.redis!.flushall();
      const reconciler = createReconciler({
        catalog: t.container.config.catalog,
        engine: t.container.engine,
        runs: t.container.repositories.runs,
        queue: t.container.producer,
        lead: advisoryLead(t.database.pool, RECONCILER_LOCK_ID),
        afterMs: 0,
        logger: createLogger('silent'),
      });
      expect(await reconciler.tick()).toBeGreaterThanOrEqual(1);
      expect(await t.container.producer.queues.intent.getJob(`${batchId}.intent`)).toBeDefined();
      for (const worker of workers.workers.values()) worker.resume();
      expect((await finished(batchId)).status).toBe('completed');
      // A second pass finds nothing left to do.
      expect(await reconciler.tick()).toBe(0);
    } finally {
      for (const worker of workers.workers.values()) worker.resume();
    }
  });
});
