/**
 * Real processes: one `api` and two `worker` processes on one database and queue prefix, the
 * OpenAI provider pointed at the loopback fake (300 ms per completion). While both workers hold
 * active LLM jobs, one worker is SIGKILLed; the other must finish every run — through BullMQ's
 * stalled-job detection (short lock and check interval) — with exactly one reply per run, every
 * step completed once, and the replies of each thread in message order.
 */
import { createPostgresBackend, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stageOrder } from '../../../src/engine/dag.js';
import { CATALOG } from '../../../src/engine/catalog.js';
import type { StageName } from '../../../src/engine/catalog.js';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { testTransport } from '../../support/transport.js';
import {
  bootstrapTenant,
  deleteRedisKeys,
  http,
  killAll,
  REDIS_URL,
  serverEnv,
  startServerProcess,
  waitUntil,
  type ProcessTenant,
  type ServerProcess,
} from '../../support/processes.js';

const THREADS = 10;
const MESSAGES_PER_THREAD = 4;
const TOTAL = THREADS * MESSAGES_PER_THREAD;
const LLM_LATENCY_MS = 300;
/** Each worker runs at most CONCURRENCY_OPENAI LLM jobs, so more in flight means both hold some. */
const OPENAI_CONCURRENCY = 5;
const KILL_WHEN_IN_FLIGHT = OPENAI_CONCURRENCY + 3;

let database: TestDatabase | undefined;
let fake: FakeOpenAiServer | undefined;
let prefix: string | undefined;
let api: ServerProcess;
let victim: ServerProcess;
let survivor: ServerProcess;
let tenant: ProcessTenant;

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `test-${database.name}`;
  fake = await startFakeOpenAi({ apiKey: 'test', latencyMs: LLM_LATENCY_MS });
  const env = serverEnv(
    { databaseUrl: database.url, prefix },
    {
      OPENAI_API_KEY: 'test',
      OPENAI_BASE_URL: fake.url,
      CONCURRENCY_OPENAI: String(OPENAI_CONCURRENCY),
      QUEUE_STALLED_INTERVAL_MS: '1000',
      QUEUE_LOCK_DURATION_MS: '2000',
      RATE_LIMIT_MAX: '100000',
    },
  );
  tenant = await bootstrapTenant(env, 'Kill Test', 'admin@kill.test');
  [api, victim, survivor] = await Promise.all([
    startServerProcess('api', env, { name: 'api' }),
    startServerProcess('worker', env, { name: 'worker-1 (killed)' }),
    startServerProcess('worker', env, { name: 'worker-2' }),
  ]);
}, 90_000);

afterAll(async () => {
  await killAll();
  await fake?.close();
  if (prefix) await deleteRedisKeys(prefix);
  await database?.drop();
}, 30_000);

/**
 * For a failure message: every run of each thread that still has an open run, with each step's
 * state in PostgreSQL (status/attempts, finished relative to the kill) and its job in BullMQ.
 */
async function describeOpenRuns(db: TestDatabase, queuePrefix: string, killedAt: number | undefined, worker: ServerProcess): Promise<string> {
  const { rows } = await db.pool.query<{
    id: string;
    thread_id: string;
    seq: string;
    open: boolean;
    steps: Array<{ stage: string; status: string; attempts: number; finished_ms: number | null }>;
  }>(
    `select r.id, r.thread_id, m.seq, r.finished_at is null as open,
            (select json_agg(json_build_object('stage', s.stage, 'status', s.status, 'attempts', s.attempts,
                                               'finished_ms', (extract(epoch from s.finished_at) * 1000)::bigint) order by s.stage)
               from run_steps s where s.run_id = r.id) as steps
       from runs r join messages m on m.run_id = r.id and m.role = 'user'
      where r.thread_id in (select thread_id from runs where finished_at is null)
      order by r.thread_id, m.seq`,
  );
  // The jobs are read where the servers keep them: Redis, or the database's BullMQ schema.
  const connection = testTransport === 'redis' ? new Redis(REDIS_URL, { maxRetriesPerRequest: null }) : undefined;
  const queueOf = (name: string): Queue =>
    connection
      ? new Queue(name, { connection, prefix: queuePrefix })
      : (new Queue(name, { connection: { connectionString: db.url, schema: 'bullmq', max: 2 } }, createPostgresBackend) as unknown as Queue);
  const queues = new Map(stageOrder(CATALOG).map((stage) => [stage, queueOf(CATALOG[stage].queue)]));
  try {
    const lines = [`killed at ${killedAt}; step: status/attempts/finished-minus-kill ms | job state/returned/attemptsMade/stalledCounter`];
    for (const run of rows) {
      lines.push(`run ${run.id} thread ${run.thread_id.slice(0, 8)} seq ${run.seq}${run.open ? ' OPEN' : ''}`);
      for (const step of run.steps) {
        const job = await queues.get(step.stage as StageName)!.getJob(`${run.id}.${step.stage}`);
        const state = job ? await job.getState() : 'no job';
        const finished = step.finished_ms === null || killedAt === undefined ? '-' : String(Number(step.finished_ms) - killedAt);
        const jobInfo = job ? `${state}/${String(job.returnvalue ?? job.failedReason ?? '-')}/${job.attemptsMade}/${job.stalledCounter}` : state;
        lines.push(`  ${step.stage}: ${step.status}/${step.attempts}/${finished} | ${jobInfo}`);
      }
    }
    return `${lines.join('\n')}\n${worker.tail(40)}`;
  } finally {
    await Promise.all([...queues.values()].map((queue) => queue.close()));
    connection?.disconnect();
  }
}

describe('a worker process killed with SIGKILL mid-job', () => {
  it('leaves the other worker to finish every run exactly once, replies in thread order', async () => {
    const db = database!;
    const llm = fake!;
    const base = api.baseUrl();
    const headers = tenant.headers;

    const threadIds: string[] = [];
    for (let t = 0; t < THREADS; t++) {
      const res = await http(base, 'POST', '/api/v1/chat/threads', { headers, body: { title: `kill thread ${t}` } });
      expect(res.status, res.text).toBe(201);
      threadIds.push(res.body.id);
    }

    // Threads in parallel, the messages of one thread one after another.
    const batchIds: string[] = [];
    const posting = Promise.all(
      threadIds.map(async (threadId, t) => {
        for (let m = 0; m < MESSAGES_PER_THREAD; m++) {
          const res = await http(base, 'POST', `/api/v1/chat/threads/${threadId}/messages/queued`, {
            headers,
            body: { content: `Thread ${t}, note ${m}: draft a short update for the press team about the spring product launch.` },
          });
          expect(res.status, res.text).toBe(202);
          batchIds.push(res.body.data.tracking.batchId);
        }
      }),
    );
    posting.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled

    // Both workers hold LLM calls at the fake: with more than one worker's concurrency in flight,
    // the one to be killed holds at least KILL_WHEN_IN_FLIGHT - OPENAI_CONCURRENCY of them.
    await llm.waitFor((f) => f.inFlight >= KILL_WHEN_IN_FLIGHT, 30_000);
    const inFlightAtKill = llm.inFlight;
    const killedAt = Date.now();
    victim.signal('SIGKILL');
    const exit = await victim.waitForExit(10_000);
    expect(exit.signal).toBe('SIGKILL');
    await posting;
    expect(batchIds).toHaveLength(TOTAL);

    // The killed worker's calls were cut off at the fake.
    await waitUntil(() => llm.aborted > 0, { timeoutMs: 10_000, what: 'the fake saw the killed worker disconnect' });

    await waitUntil(
      async () => {
        const { rows } = await db.pool.query<{ open: number; total: number }>(
          `select count(*) filter (where finished_at is null)::int as open, count(*)::int as total from runs`,
        );
        return rows[0]!.total === TOTAL && rows[0]!.open === 0;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'every run finished',
        details: () => describeOpenRuns(db, prefix!, killedAt, survivor),
      },
    );
    expect(survivor.exit).toBeUndefined();

    // The API agrees: every batch completed.
    for (const batchId of batchIds) {
      const res = await http(base, 'GET', `/api/v1/chat/batch/${batchId}/results`, { headers });
      expect(res.status, res.text).toBe(200);
      expect(res.body.status, `${batchId}: ${res.text}`).toBe('completed');
      expect(res.body.completedJobs).toBe(res.body.totalJobs);
    }

    // Exactly one reply per run.
    const replies = await db.pool.query<{ run_id: string; n: number }>(
      `select run_id, count(*)::int as n from messages where role = 'assistant' group by run_id`,
    );
    expect(replies.rows).toHaveLength(TOTAL);
    expect(replies.rows.every((row) => row.n === 1)).toBe(true);
    expect(new Set(replies.rows.map((row) => row.run_id))).toEqual(new Set(batchIds));

    // Every step stored once (primary key) and completed; the reply came from the fake LLM.
    const steps = await db.pool.query<{ run_id: string; stage: string; status: string; attempts: number; provider: string | null }>(
      `select run_id, stage, status, attempts, result->>'provider' as provider from run_steps`,
    );
    expect(steps.rows).toHaveLength(TOTAL * 5);
    expect(steps.rows.filter((s) => s.status !== 'completed')).toEqual([]);
    const llmSteps = steps.rows.filter((s) => s.stage === 'openai');
    expect(llmSteps.every((s) => s.provider === 'openai')).toBe(true);
    // The killed worker's LLM jobs were claimed again by the survivor.
    const retried = llmSteps.filter((s) => s.attempts > 1).length;
    expect(retried).toBeGreaterThan(0);

    // Within each thread, replies are stored in the order of the messages they answer.
    const order = await db.pool.query<{ thread_id: string; user_seq: string; reply_seq: string }>(
      `select u.thread_id, u.seq as user_seq, a.seq as reply_seq
         from messages u join messages a on a.run_id = u.run_id and a.role = 'assistant'
        where u.role = 'user'
        order by u.thread_id, u.seq`,
    );
    const byThread = new Map<string, number[]>();
    for (const row of order.rows) {
      const list = byThread.get(row.thread_id) ?? [];
      list.push(Number(row.reply_seq));
      byThread.set(row.thread_id, list);
    }
    expect(byThread.size).toBe(THREADS);
    for (const [threadId, replySeqs] of byThread) {
      expect(replySeqs, `thread ${threadId}`).toEqual([...replySeqs].sort((a, b) => a - b));
    }
    for (const row of order.rows) expect(Number(row.reply_seq)).toBeGreaterThan(Number(row.user_seq));

    console.info(
      `[sigkill] in flight at kill: ${inFlightAtKill}, aborted at the fake: ${llm.aborted}, LLM steps claimed again: ${retried}, ` +
        `chat requests: ${llm.chatRequests().length}, peak in flight: ${llm.maxConcurrent}`,
    );
  }, 100_000);
});
