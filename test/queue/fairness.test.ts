import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';
import { createLogger } from '../../src/logger.js';
import { stageOrder } from '../../src/engine/dag.js';
import { startQueueSystem, type QueueSystem } from '../../src/queue/queue-system.js';
import { createProducer } from '../../src/adapters/bullmq/transport.js';
import { createRedisQueueBackend } from '../../src/adapters/bullmq/backend.js';
import { createRedisCoordination } from '../../src/adapters/redis/coordination.js';
import { CATALOG } from '../../src/engine/catalog.js';
import type { Queue } from 'bullmq';

/**
 * Fairness on real Redis and PostgreSQL, asserted on order, not on time: the backlog is queued
 * before any worker runs, then one worker per stage (concurrency 1) takes it, and the order in
 * which runs' entry steps started (PostgreSQL) shows who was taken first.
 */

// One job per stage at a time, nothing resized meanwhile; a job pushes its organization's next one back 1 s.
const SERIAL = {
  AUTOSCALE_ENABLED: 'false',
  CONCURRENCY_INTENT: '1',
  CONCURRENCY_SECURITY: '1',
  CONCURRENCY_RAG: '1',
  CONCURRENCY_ROCKETREACH: '1',
  CONCURRENCY_OPENAI: '1',
  FAIRNESS_JOB_COST_MS: '1000',
};

const logger = createLogger('silent');
let t: TestApp | undefined;
let system: QueueSystem | undefined;
let fake: FakeOpenAiServer | undefined;

afterEach(async () => {
  await system?.close(5_000);
  system = undefined;
  await t?.close();
  t = undefined;
  await fake?.close();
  fake = undefined;
});

async function newThread(app: TestApp, tenant: Tenant): Promise<string> {
  const res = await app.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: {} });
  expect(res.statusCode).toBe(201);
  return res.json().id;
}

async function send(app: TestApp, tenant: Tenant, threadId: string, content: string): Promise<string> {
  const res = await app.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
  expect(res.statusCode).toBe(202);
  return res.json().data.tracking.batchId;
}

/** Organizations of the runs in the order their entry step (intent) started. */
async function takenOrder(app: TestApp): Promise<string[]> {
  const { rows } = await app.database.pool.query<{ org_id: string }>(
    `select r.org_id from runs r join run_steps s on s.run_id = r.id and s.stage = 'intent' order by s.started_at, r.id`,
  );
  return rows.map((row) => row.org_id);
}

async function allFinished(app: TestApp, count: number): Promise<void> {
  await eventually(
    async () => Number((await app.database.pool.query('select count(*)::int as n from runs where finished_at is not null')).rows[0].n) >= count,
    60_000,
    `${count} runs to finish`,
  );
}

const HEAVY = '00000000-0000-4000-8000-00000000000a';
const LIGHT = '00000000-0000-4000-8000-00000000000b';

/** The BullMQ transport on its own prefix, fair with the given weights (and clock). */
function directProducer(weights: Record<string, number>, now?: () => number) {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const prefix = `test-fair-${Math.random().toString(36).slice(2, 10)}`;
  const coordination = createRedisCoordination({ redis: connection, target: { url }, logger });
  const producer = createProducer({
    catalog: CATALOG,
    backend: createRedisQueueBackend({ producer: connection, target: { url }, prefix, logger }),
    coordination,
    logger,
    cancelChannel: `${prefix}:cancel`,
    fairness: { enabled: true, jobCostMs: 1000, maxLeadMs: 3_600_000, weights, budgets: { perDay: {}, byOrg: {} } },
    ...(now ? { now } : {}),
  });
  return {
    producer,
    async close() {
      await Promise.all(Object.values(producer.queues).map((queue) => queue.obliterate({ force: true }).catch(() => undefined)));
      await producer.close();
      await coordination.close();
      await connection.quit();
    },
  };
}

/** The ids of the first `count` jobs in the order the queue hands them out (lowest priority first). */
async function takeOrder(queue: Queue, count: number): Promise<string[]> {
  const jobs = await queue.getJobs(['prioritized'], 0, count - 1, true);
  return jobs.map((job) => String(job.id));
}

async function startWorkers(app: TestApp): Promise<void> {
  system = await startQueueSystem(app.container, stageOrder(app.container.config.catalog), logger);
}

describe('fair order across organizations (BullMQ on Redis)', () => {
  it("takes organization B's message before the bulk of A's backlog, and keeps each thread's reply order", async () => {
    t = await createTestApp(SERIAL);
    const a = await t.tenant('Flood');
    const b = await t.tenant('Steady');
    const aThreads = [await newThread(t, a), await newThread(t, a), await newThread(t, a)];
    const bThread = await newThread(t, b);
    for (let i = 0; i < 60; i++) await send(t, a, aThreads[i % 3]!, `Draft a short statement number ${i}`);
    await send(t, b, bThread, 'Write a headline for our launch');
    await startWorkers(t);
    await allFinished(t, 61);

    const order = await takenOrder(t);
    const position = order.indexOf(b.orgId);
    // First in, first out would take it last (position 60). Fair: B's job starts at the tag of the
    // queue's next job (A's backlog waits behind the clock, no worker running), so it goes second.
    expect(position).toBeGreaterThanOrEqual(0);
    expect(position).toBeLessThanOrEqual(2);

    // Within A, each thread's runs ended in the order of its messages, each with its reply.
    for (const threadId of aThreads) {
      const { rows } = await t.database.pool.query<{ status: string }>('select status::text from runs where thread_id = $1', [threadId]);
      const bySeq = await t.database.pool.query<{ id: string }>('select id from runs where thread_id = $1 order by seq', [threadId]);
      const byFinish = await t.database.pool.query<{ id: string }>('select id from runs where thread_id = $1 order by finished_at, seq', [threadId]);
      expect(rows.every((row) => row.status === 'completed')).toBe(true);
      expect(byFinish.rows.map((r) => r.id)).toEqual(bySeq.rows.map((r) => r.id));
      const messages = (await t.as(a, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages?limit=100` })).json().messages as Array<{ role: string }>;
      expect(messages.filter((m) => m.role === 'assistant')).toHaveLength(20);
    }
  }, 90_000);

  it('with FAIRNESS=off the same backlog is first in, first out: B is taken last', async () => {
    t = await createTestApp({ ...SERIAL, FAIRNESS: 'off' });
    const a = await t.tenant('Flood');
    const b = await t.tenant('Steady');
    const thread = await newThread(t, a);
    for (let i = 0; i < 20; i++) await send(t, a, thread, `Draft a short statement number ${i}`);
    await send(t, b, await newThread(t, b), 'Write a headline for our launch');
    await startWorkers(t);
    await allFinished(t, 21);
    expect((await takenOrder(t)).indexOf(b.orgId)).toBe(20);
  }, 90_000);

  it('honours weights: an organization with weight 3 is taken three times as often as one with weight 1', async () => {
    const { producer, close } = directProducer({ [HEAVY]: 3 });
    try {
      for (let i = 0; i < 40; i++) {
        await producer.enqueue(`heavy-${i}`, HEAVY, ['intent']);
        await producer.enqueue(`light-${i}`, LIGHT, ['intent']);
      }
      const first = await takeOrder(producer.queues.intent, 20);
      const heavy = first.filter((job) => job.startsWith('heavy')).length;
      // 15 of 20 by weight; one either way as the two lanes' tags meet.
      expect(heavy).toBeGreaterThanOrEqual(14);
      expect(heavy).toBeLessThanOrEqual(16);
      // Each organization's own jobs keep their order.
      const heavies = first.filter((job) => job.startsWith('heavy')).map((job) => Number(job.split(/[-.]/)[1]));
      expect(heavies).toEqual([...heavies].sort((x, y) => x - y));
    } finally {
      await close();
    }
  });

  it('rebases waiting jobs when the epoch of priorities changes, so that they keep their place', async () => {
    const span = 2 ** 19 * 10; // an epoch, in ms (fair-order.ts: 10 ms units, a quarter of the range)
    let now = span * 3_000_000 - 5_000; // 5 s before an epoch ends
    const { producer, close } = directProducer({}, () => now);
    try {
      // A backlog of HEAVY, 20 s ahead of now at its tail, queued in the old epoch.
      for (let i = 0; i < 20; i++) await producer.enqueue(`heavy-${i}`, HEAVY, ['intent']);
      now += 10_000; // the epoch has changed
      await producer.enqueue('light-0', LIGHT, ['intent']);
      await eventually(async () => {
        const jobs = await producer.queues.intent.getJobs(['prioritized'], 0, -1);
        return jobs.every((job) => job.data.fairEpoch === jobs.find((j) => j.id?.startsWith('light'))?.data.fairEpoch);
      }, 10_000, 'the old jobs to be rebased');
      const order = await takeOrder(producer.queues.intent, 21);
      // LIGHT's job is tagged at now (10 s after the backlog's head): behind the first ten, ahead of the rest.
      const position = order.findIndex((job) => job.startsWith('light'));
      expect(position).toBeGreaterThanOrEqual(9);
      expect(position).toBeLessThanOrEqual(11);
      expect(order.filter((job) => job.startsWith('heavy'))).toEqual(Array.from({ length: 20 }, (_, i) => `heavy-${i}.intent`));
    } finally {
      await close();
    }
  });
});

describe("a provider's 429 for one organization (BullMQ on Redis)", () => {
  it('holds only that organization: another organization is answered meanwhile, and its later job waits without calling the provider', async () => {
    fake = await startFakeOpenAi();
    t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, AUTOSCALE_ENABLED: 'false' }, { workers: true });
    const app = t;
    const a = await app.tenant('Limited');
    const b = await app.tenant('Other');
    const openaiState = async (batchId: string) => (await app.container.producer.inspect([{ jobId: `${batchId}.openai`, stage: 'openai' }])).get(`${batchId}.openai`)?.state;

    // A's LLM call is answered 429 with a Retry-After far longer than the rest of this test.
    fake.failNext(429, { headers: { 'retry-after': '20' } });
    const first = await send(app, a, await newThread(app, a), 'Draft a statement about the outage');
    await eventually(async () => (await openaiState(first)) === 'delayed', 15_000, "A's LLM job to be put back");
    expect(fake.chatRequests()).toHaveLength(1);

    // The queue is not paused: B's message goes through the same stage at once.
    const other = await send(app, b, await newThread(app, b), 'Write a headline for our launch');
    const doc = await eventually(async () => {
      const res = (await app.as(b, { method: 'GET', url: `/api/v1/chat/batch/${other}/results` })).json();
      return res.status === 'completed' ? res : undefined;
    }, 15_000, "B's batch to complete");
    expect(doc.results.openai.choices[0].message.content.length).toBeGreaterThan(0);
    expect(fake.chatRequests()).toHaveLength(2);
    expect(await openaiState(first)).toBe('delayed');

    // A's next message reaches the LLM stage and is put back too, without a request to the provider.
    const second = await send(app, a, await newThread(app, a), 'Summarize the talking points');
    await eventually(async () => (await openaiState(second)) === 'delayed', 15_000, "A's second LLM job to be put back");
    expect(fake.chatRequests()).toHaveLength(2);
    // Neither used an attempt.
    const jobs = (await app.as(a, { method: 'GET', url: `/api/v1/chat/batch/${first}/results` })).json().jobs;
    expect(jobs.openai.attempts ?? 0).toBeLessThanOrEqual(1);
  }, 60_000);
});

describe('daily budgets per organization (PostgreSQL)', () => {
  it("answers budget_exhausted once an organization's LLM tokens for the day are spent, and leaves the others' budgets alone", async () => {
    fake = await startFakeOpenAi();
    t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, BUDGET_LLM_TOKENS_PER_DAY: '1' }, { workers: true });
    const app = t;
    const a = await app.tenant('Spender');
    const b = await app.tenant('Saver');
    const finished = (tenant: Tenant, batchId: string) =>
      eventually(async () => {
        const doc = (await app.as(tenant, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
        return doc.finishedAt ? doc : undefined;
      }, 20_000, 'the batch to finish');

    const thread = await newThread(app, a);
    const first = await finished(a, await send(app, a, thread, 'Write a headline for our launch'));
    expect(first.status).toBe('completed');
    const spent = Number((await app.database.pool.query('select llm_tokens from org_usage where org_id = $1', [a.orgId])).rows[0].llm_tokens);
    expect(spent).toBeGreaterThan(1);

    const second = await finished(a, await send(app, a, thread, 'And one for the blog post'));
    expect(second.status).toBe('failed');
    expect(second.errors).toEqual([expect.objectContaining({ stage: 'openai', code: 'budget_exhausted' })]);
    expect(second.jobs.openai).toMatchObject({ status: 'failed', attempts: 1 });
    expect(fake.chatRequests()).toHaveLength(1);

    const other = await finished(b, await send(app, b, await newThread(app, b), 'Write a headline for our launch'));
    expect(other.status).toBe('completed');
    expect(fake.chatRequests()).toHaveLength(2);
  }, 60_000);
});
