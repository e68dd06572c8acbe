/**
 * Auto-scaling end to end: real PostgreSQL and Redis, the workers in this process, the LLM a
 * loopback fake answering in 200 ms. The LLM queue starts at concurrency 1 (min 1, max 8) and is
 * sampled every 200 ms; a backlog of 40 queued messages (40 threads, so replies do not wait for
 * each other) makes it rise, and once idle it steps back to 1. Every observation comes from
 * GET /api/v1/chat/system/queue-status; the trace of decisions is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, testTransport, type Tenant, type TestApp } from '../support/app.js';

const LATENCY_MS = 200;
const MAX = 8;
const MESSAGES = 40;

let fake: FakeOpenAiServer;
let t: TestApp;
let acme: Tenant;

beforeAll(async () => {
  fake = await startFakeOpenAi({ latencyMs: LATENCY_MS });
  t = await createTestApp(
    {
      OPENAI_API_KEY: fake.apiKey,
      OPENAI_BASE_URL: fake.url,
      CONCURRENCY_OPENAI: '1',
      CONCURRENCY_OPENAI_MIN: '1',
      CONCURRENCY_OPENAI_MAX: String(MAX),
      AUTOSCALE_INTERVAL_MS: '200',
      AUTOSCALE_TARGET_DRAIN_MS: '1000',
      AUTOSCALE_UP_COOLDOWN_MS: '400',
      AUTOSCALE_DOWN_COOLDOWN_MS: '300',
      AUTOSCALE_IDLE_MS: '800',
      RATE_LIMIT_MAX: '100000',
    },
    { workers: true },
  );
  // Queue status shows every tenant's queues and the worker processes: an operator's view.
  acme = await t.tenant('Autoscale org', 'ops@autoscale.test', { operator: true });
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

interface QueueStatusBody {
  name: string;
  counts: Record<string, number>;
  paused: boolean;
  concurrency: { current: number; min: number; max: number; processes: Array<{ processId: string; current: number; min: number; max: number }> };
  rateLimit: { limiter: { max: number; duration: number } | null; limited: boolean; ttlMs: number; globalConcurrency: number | null };
  workersSeen: number;
  lastDecisions: Array<{ at: string; processId: string; from: number; to: number; reason: string }>;
}

/** Every observation of the LLM queue, for the assertions at the end. */
const observed: Array<{ at: number; current: number; waiting: number; active: number }> = [];
const started = Date.now();

async function openaiStatus(): Promise<QueueStatusBody> {
  const res = await t.as(acme, { method: 'GET', url: '/api/v1/chat/system/queue-status' });
  expect(res.statusCode, res.body).toBe(200);
  const queue = (res.json().queues as QueueStatusBody[]).find((q) => q.name === 'openai-processing')!;
  observed.push({ at: Date.now() - started, current: queue.concurrency.current, waiting: queue.counts.waiting!, active: queue.counts.active! });
  return queue;
}

describe('auto-scaling the LLM queue', () => {
  it('rises under a backlog, never above the max, and falls back to min when idle', async () => {
    const idle = await eventually(async () => {
      const q = await openaiStatus();
      return q.concurrency.processes.length === 1 ? q : undefined;
    }, 5_000, 'this process to publish its state');
    expect(idle.concurrency).toMatchObject({ current: 1, min: 1, max: MAX });
    expect(idle.rateLimit).toEqual({ limiter: { max: 500, duration: 60_000 }, limited: false, ttlMs: 0, globalConcurrency: null });
    expect(idle.paused).toBe(false);
    expect(idle.workersSeen).toBeGreaterThanOrEqual(1);

    const threadIds = await Promise.all(
      Array.from({ length: MESSAGES }, async (_, i) => {
        const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: `backlog ${i}` } });
        return res.json().id as string;
      }),
    );
    const t0 = Date.now();
    // Watched from the first message on: under load the backlog may already drain while the
    // last messages are being accepted.
    const rising = eventually(async () => {
      const q = await openaiStatus();
      return q.concurrency.current > 1 ? q : undefined;
    }, 20_000, 'the LLM queue to scale up');
    const accepted = await Promise.all(
      threadIds.map((threadId, i) =>
        t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: `Draft update ${i} for the press team` } }),
      ),
    );
    expect(accepted.map((res) => res.statusCode)).toEqual(Array(MESSAGES).fill(202));

    const risen = await rising.catch((error: unknown) => {
      console.log(`[autoscale] observed: ${JSON.stringify(observed)}\ndecisions: ${JSON.stringify(t.queueSystem!.autoscaling!.decisions('openai'))}`);
      throw error;
    });
    expect(risen.lastDecisions[0]).toMatchObject({ processId: risen.concurrency.processes[0]!.processId });
    expect(risen.lastDecisions.some((d) => d.to > d.from && /backlog|slots busy/.test(d.reason))).toBe(true);

    await eventually(async () => {
      const { rows } = await t.database.pool.query<{ open: number }>(`select count(*) filter (where finished_at is null)::int as open from runs`);
      await openaiStatus();
      return rows[0]!.open === 0;
    }, 20_000, 'every run to finish');
    const drainedAfterMs = Date.now() - t0;

    const back = await eventually(async () => {
      const q = await openaiStatus();
      return q.concurrency.current === 1 && q.counts.active === 0 ? q : undefined;
    }, 15_000, 'the LLM queue to fall back to min');
    expect(back.lastDecisions[0]).toMatchObject({ to: 1 });
    expect(back.lastDecisions[0]!.reason).toMatch(/^idle for/);

    const trace = t.queueSystem!.autoscaling!.decisions('openai');
    const lines = trace.map((d) => `  +${String(d.at - t0).padStart(5)} ms  ${d.from} -> ${d.to}  ${d.reason}`);
    console.log(
      `[autoscale] openai-processing, ${MESSAGES} messages, LLM ${LATENCY_MS} ms, drained in ${drainedAfterMs} ms; ` +
        `peak in flight at the fake ${fake.maxConcurrent}; peak concurrency seen ${Math.max(...observed.map((o) => o.current))}\n${lines.join('\n')}`,
    );

    const ups = trace.filter((d) => d.to > d.from);
    const downs = trace.filter((d) => d.to < d.from);
    expect(ups.length).toBeGreaterThanOrEqual(1);
    expect(downs.length).toBeGreaterThanOrEqual(1);
    expect(trace.at(-1)!.to).toBe(1);
    // Up steps at most double; down steps come one at a time after the scale-ups.
    for (const d of ups) expect(d.to).toBeLessThanOrEqual(d.from * 2);
    expect(Math.min(...downs.map((d) => d.at))).toBeGreaterThan(Math.max(...ups.map((d) => d.at)));
    // Never above the max: not in a decision, not in what the endpoint showed, not at the provider.
    expect(Math.max(...trace.map((d) => d.to))).toBeLessThanOrEqual(MAX);
    expect(Math.max(...observed.map((o) => o.current))).toBeLessThanOrEqual(MAX);
    expect(fake.maxConcurrent).toBeLessThanOrEqual(MAX);
    expect(fake.maxConcurrent).toBeGreaterThan(1);
    // The endpoint shows the same decisions as the process keeps.
    expect(back.lastDecisions.map((d) => `${d.from}->${d.to}`)).toEqual(
      trace.slice(-back.lastDecisions.length).reverse().map((d) => `${d.from}->${d.to}`),
    );
  });

  it('shows the other queues, the RocketReach global limit and a rate-limited queue', async () => {
    const worker = t.queueSystem!.workers!.workers.get('openai')!;
    await worker.rateLimit(1_500);
    const res = await t.as(acme, { method: 'GET', url: '/api/v1/chat/system/queue-status' });
    expect(res.statusCode).toBe(200);
    const queues = res.json().queues as QueueStatusBody[];
    expect(queues.map((q) => q.name)).toEqual(['intent-classification', 'security-classification', 'rag-processing', 'rocketreach-api', 'openai-processing']);
    const openai = queues.find((q) => q.name === 'openai-processing')!;
    expect(openai.rateLimit.limited).toBe(true);
    expect(openai.rateLimit.ttlMs).toBeGreaterThan(0);
    expect(openai.rateLimit.ttlMs).toBeLessThanOrEqual(1_500);
    const rocketreach = queues.find((q) => q.name === 'rocketreach-api')!;
    expect(rocketreach.rateLimit).toMatchObject({ limiter: { max: 10, duration: 1_000 }, globalConcurrency: 2 });
    // CONCURRENCY_ROCKETREACH is 2; idle, it has stepped down toward min, never above the global limit.
    expect(rocketreach.concurrency).toMatchObject({ min: 1, max: 2 });
    expect(rocketreach.concurrency.current).toBeLessThanOrEqual(2);
    const intent = queues.find((q) => q.name === 'intent-classification')!;
    expect(intent.rateLimit).toEqual({ limiter: null, limited: false, ttlMs: 0, globalConcurrency: null });
    expect(intent.concurrency).toMatchObject({ min: 5, max: 40 });
    for (const q of queues) expect(q.counts).toEqual(expect.objectContaining({ waiting: expect.any(Number), completed: expect.any(Number) }));
  });

  it('needs an operator, and answers 503 when Redis is unreachable', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/chat/system/queue-status' })).statusCode).toBe(401);
    const admin = await t.tenant('Autoscale tenant');
    const refused = await t.as(admin, { method: 'GET', url: '/api/v1/chat/system/queue-status' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('operator_required');
    // Redis down has no twin on the PostgreSQL transport (the database down stops the API altogether).
    if (testTransport !== 'redis') return;
    const down = await createTestApp({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const tenant = await down.tenant('Redis down org', 'ops@redis-down.test', { operator: true });
      const res = await down.as(tenant, { method: 'GET', url: '/api/v1/chat/system/queue-status' });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('queue_unavailable');
    } finally {
      await down.close();
    }
  });
});
