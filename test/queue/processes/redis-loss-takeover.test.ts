/**
 * Real processes: two `start` processes (API and workers each) on one database, a private Redis
 * (append-only, so that its jobs survive a kill) and the loopback fake LLM (400 ms a reply). With
 * runs in flight in many threads, Redis is SIGKILLed: both processes notice and take the open
 * runs over in-process (the transport-loss takeover), and every run must complete with exactly
 * one reply, the replies of each thread in message order, within TAKEOVER_BOUND_MS of the kill.
 * Then Redis comes back with the jobs it had: the workers deliver those leftovers, which must run
 * nothing again (no LLM call, no second reply), and new messages go to the queues again.
 *
 * The same once more with a Redis that hangs (SIGSTOP) instead: the connections stay up and
 * answer nothing, which the processes notice by their PING going unanswered (2 s); then SIGCONT.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/engine/catalog.js';
import { stageOrder } from '../../../src/engine/dag.js';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { bootstrapTenant, http, killAll, serverEnv, startServerProcess, waitUntil, type ProcessTenant, type ServerProcess } from '../../support/processes.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../../support/redis-server.js';

const THREADS = 12;
const MESSAGES_PER_THREAD = 3;
const LLM_LATENCY_MS = 400;
/**
 * Kill → every run finished. Noticing takes TAKEOVER_AFTER_MS (1 s); the replies of a thread then
 * follow one another (at most MESSAGES_PER_THREAD LLM calls of 400 ms each), threads in parallel.
 */
const TAKEOVER_BOUND_MS = 8_000;
/** The same for a hung Redis, noticed once a PING has gone unanswered for 2 s. */
const HUNG_TAKEOVER_BOUND_MS = 10_000;

async function openRuns(db: TestDatabase): Promise<number> {
  const { rows } = await db.pool.query<{ open: number }>('select count(*)::int as open from runs where finished_at is null');
  return rows[0]!.open;
}

/** Replies per run, and each thread's replies in the order of their user messages. */
async function checkReplies(db: TestDatabase, batchIds: readonly string[]) {
  const replies = await db.pool.query<{ run_id: string; n: number }>(`select run_id, count(*)::int as n from messages where role = 'assistant' group by run_id`);
  expect(replies.rows.filter((row) => row.n !== 1)).toEqual([]);
  expect(new Set(replies.rows.map((row) => row.run_id))).toEqual(new Set(batchIds));
  // Within a thread, reply order (messages.seq) follows user message order (runs.seq).
  const order = await db.pool.query<{ thread_id: string; runs: string[]; replies: string[] }>(
    `select r.thread_id,
            array_agg(r.id::text order by r.seq) as runs,
            array_agg(r.id::text order by a.seq) as replies
       from runs r join messages a on a.run_id = r.id and a.role = 'assistant'
      group by r.thread_id`,
  );
  for (const row of order.rows) expect(row.replies, `thread ${row.thread_id}`).toEqual(row.runs);
  const status = await db.pool.query<{ status: string; n: number }>(`select status::text, count(*)::int as n from runs group by 1`);
  expect(status.rows).toEqual([{ status: 'completed', n: batchIds.length }]);
}

describe.each([
  { loss: 'killed' as const, bound: TAKEOVER_BOUND_MS },
  { loss: 'hung' as const, bound: HUNG_TAKEOVER_BOUND_MS },
])('Redis $loss with runs in flight', ({ loss, bound }) => {
  let database: TestDatabase | undefined;
  let fake: FakeOpenAiServer | undefined;
  let redis: RedisServer;
  let servers: ServerProcess[] = [];
  let tenant: ProcessTenant;
  const prefix = `redis-loss-${loss}`;

  beforeAll(async () => {
    [database, fake, redis] = await Promise.all([
      createTestDatabase(),
      startFakeOpenAi({ apiKey: 'test', latencyMs: LLM_LATENCY_MS }),
      startRedisServer({ appendonly: true }),
    ]);
    const env = serverEnv(
      { databaseUrl: database.url, prefix },
      {
        REDIS_URL: redis.url,
        OPENAI_API_KEY: 'test',
        OPENAI_BASE_URL: fake.url,
        RATE_LIMIT_MAX: '100000',
        // Jobs that were active when Redis died come back to the workers soon after it returns.
        QUEUE_STALLED_INTERVAL_MS: '1000',
        QUEUE_LOCK_DURATION_MS: '2000',
      },
    );
    tenant = await bootstrapTenant(env, 'Redis Loss', 'admin@redis-loss.test');
    servers = await Promise.all([startServerProcess('start', env, { name: 'start-1' }), startServerProcess('start', env, { name: 'start-2' })]);
  }, 90_000);

  afterAll(async () => {
    await killAll();
    await fake?.close();
    await stopAllRedisServers();
    await database?.drop();
  }, 30_000);

  it('the processes take the open runs over: every run completes once, in thread order, within the bound; Redis back runs nothing twice', async () => {
    const db = database!;
    const llm = fake!;
    const threadIds: string[] = [];
    for (let t = 0; t < THREADS; t++) {
      const res = await http(servers[t % 2]!.baseUrl(), 'POST', '/api/v1/chat/threads', { headers: tenant.headers, body: { title: `loss ${t}` } });
      expect(res.status, res.text).toBe(201);
      threadIds.push(res.body.id);
    }
    // Every message accepted for the queues before the kill; threads alternate between the processes.
    const batchIds: string[] = [];
    const contents = new Map<string, string>();
    for (let m = 0; m < MESSAGES_PER_THREAD; m++) {
      await Promise.all(
        threadIds.map(async (threadId, t) => {
          const content = `Thread ${t}, note ${m}: draft a line for the press team about the harbour project.`;
          const res = await http(servers[t % 2]!.baseUrl(), 'POST', `/api/v1/chat/threads/${threadId}/messages/queued`, { headers: tenant.headers, body: { content } });
          expect(res.status, res.text).toBe(202);
          expect(res.body.degraded).toBeUndefined();
          batchIds.push(res.body.data.tracking.batchId);
          contents.set(res.body.data.tracking.batchId, content);
        }),
      );
    }
    await llm.waitFor((f) => f.inFlight >= 4, 30_000);
    const openAtKill = await openRuns(db);
    expect(openAtKill).toBeGreaterThan(THREADS);

    const killedAt = Date.now();
    if (loss === 'killed') await redis.kill();
    else redis.hang();
    await waitUntil(async () => (await openRuns(db)) === 0, {
      timeoutMs: bound + 20_000,
      intervalMs: 50,
      what: 'every run finished after the kill',
      details: () => servers.map((s) => s.tail(20)).join('\n'),
    });
    const takeoverMs = Date.now() - killedAt;
    const took = servers.map((s) => s.logs.filter((l) => l.msg === 'queue transport unreachable: took over open runs in-process').reduce((n, l) => n + Number(l.taken ?? 0), 0));
    console.info(`[redis-loss] Redis ${loss}: ${openAtKill} runs open, all finished ${takeoverMs} ms after; taken over per process: ${took.join(', ')}`);
    // Runs whose reply was already under way may finish by themselves; the rest were taken over, each by one process.
    expect(took.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(takeoverMs).toBeLessThanOrEqual(bound);
    await checkReplies(db, batchIds);

    // Redis returns with the jobs it had: the leftovers of the runs taken over.
    const llmCallsBefore = llm.chatRequests().length;
    const backAt = Date.now();
    if (loss === 'killed') await redis.restart();
    else redis.resume();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queues = stageOrder(CATALOG).map((stage) => new Queue(CATALOG[stage].queue, { connection, prefix }));
    try {
      const leftovers = (await Promise.all(queues.map((q) => q.getJobCounts('waiting', 'active', 'delayed')))).reduce(
        (sum, c) => sum + (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0),
        0,
      );
      await waitUntil(
        async () => {
          const counts = await Promise.all(queues.map((q) => q.getJobCounts('waiting', 'active', 'delayed')));
          return counts.every((c) => (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0);
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'the leftover jobs to be delivered' },
      );
      // Whatever a leftover job did, it ran no step: no LLM call, no second reply. (A hung Redis
      // also holds the finishing calls of jobs whose step was stored before the hang: they
      // complete as they were when it answers again.)
      const finishedAfter = (await Promise.all(queues.map((q) => q.getJobs(['completed'], 0, 10_000)))).flat().filter((job) => (job.finishedOn ?? 0) >= backAt);
      console.info(`[redis-loss] Redis back: ${leftovers} leftover jobs waiting or active, ${finishedAfter.length} jobs completed since, answers ${JSON.stringify([...new Set(finishedAfter.map((j) => j.returnvalue))])}`);
      if (loss === 'killed') expect(finishedAfter.filter((job) => job.returnvalue !== 'already_finished')).toEqual([]);
      expect(llm.chatRequests().length).toBe(llmCallsBefore);
      await checkReplies(db, batchIds);

      // New work goes to the queues again, and completes there.
      await waitUntil(
        async () => {
          const res = await http(servers[0]!.baseUrl(), 'POST', `/api/v1/chat/threads/${threadIds[0]}/messages/queued`, {
            headers: tenant.headers,
            body: { content: 'After Redis came back: one more line, please.' },
          });
          expect(res.status, res.text).toBe(202);
          batchIds.push(res.body.data.tracking.batchId);
          return res.body.degraded === undefined;
        },
        { timeoutMs: 15_000, intervalMs: 250, what: 'a message accepted for the queues again' },
      );
      await waitUntil(async () => (await openRuns(db)) === 0, { timeoutMs: 15_000, what: 'the new message answered' });
      const { rows } = await db.pool.query<{ driver: string }>('select driver from runs where id = $1', [batchIds.at(-1)]);
      expect(rows[0]!.driver).toBe('queue');
      await checkReplies(db, batchIds);
    } finally {
      await Promise.all(queues.map((q) => q.close()));
      connection.disconnect();
    }
  }, 90_000);
});
