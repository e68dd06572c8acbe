/**
 * Real processes on a real Redis Cluster: three masters started on loopback ports, two `api` and
 * two `worker` processes with REDIS_CLUSTER_NODES (REDIS_URL points nowhere, so nothing can fall
 * back to a single Redis). Messages sent through both APIs complete through the workers with one
 * reply each, in thread order; each queue's keys sit on one slot and the queues spread over the
 * nodes; the RocketReach global concurrency holds across both workers; a cancel aborts the LLM
 * call and the thread's next message completes; a worker SIGKILLed mid-load leaves the other to
 * finish every run exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stageOrder } from '../../../src/engine/dag.js';
import { CATALOG } from '../../../src/engine/catalog.js';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { startFakeRocketReach, type FakeRocketReach } from '../../fakes/rocketreach.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { freePort } from '../../support/ports.js';
import {
  bootstrapTenant,
  http,
  killAll,
  serverEnv,
  startServerProcess,
  waitUntil,
  type ProcessTenant,
  type ServerProcess,
} from '../../support/processes.js';
import { startRedisCluster, stopAllRedisClusters, type RedisCluster } from '../../support/redis-cluster.js';

const LLM_LATENCY_MS = 150;
const OPENAI_CONCURRENCY = 4;
const ROCKETREACH_GLOBAL = 2;

let database: TestDatabase | undefined;
let cluster: RedisCluster | undefined;
let llm: FakeOpenAiServer | undefined;
let rr: FakeRocketReach | undefined;
let prefix: string;
let apis: ServerProcess[] = [];
let workers: ServerProcess[] = [];
let tenant: ProcessTenant;

beforeAll(async () => {
  [database, cluster, llm, rr] = await Promise.all([
    createTestDatabase(),
    startRedisCluster(),
    startFakeOpenAi({ apiKey: 'test', latencyMs: LLM_LATENCY_MS }),
    startFakeRocketReach({
      apiKey: 'rr-key',
      latencyMs: 100,
      pollsUntilComplete: 1,
      people: ['Ada Lovelace', 'Brian Kernighan', 'Chloe Zhao', 'Dmitri Mendeleev', 'Elena Ferrante', 'Farid Haque'].map((name) => ({
        name,
        currentEmployer: 'Northwind Media',
        currentTitle: 'Technology Reporter',
        emails: [{ email: `${name.split(' ')[0]!.toLowerCase()}@northwind.example`, smtp_valid: 'valid' as const, grade: 'A' }],
      })),
    }),
  ]);
  prefix = `test-${database.name}`;
  const env = serverEnv(
    { databaseUrl: database.url, prefix },
    {
      REDIS_CLUSTER_NODES: cluster.env,
      // Nothing listens here: a process that used REDIS_URL instead of the cluster would not work.
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      OPENAI_API_KEY: 'test',
      OPENAI_BASE_URL: llm.url,
      CONCURRENCY_OPENAI: String(OPENAI_CONCURRENCY),
      ROCKETREACH_API_KEY: 'rr-key',
      ROCKETREACH_BASE_URL: rr.url,
      ROCKETREACH_POLL_INTERVAL_MS: '20',
      ROCKETREACH_MAX_CONCURRENT: String(ROCKETREACH_GLOBAL),
      CONCURRENCY_ROCKETREACH: '5',
      QUEUE_STALLED_INTERVAL_MS: '1000',
      QUEUE_LOCK_DURATION_MS: '2000',
      RATE_LIMIT_MAX: '100000',
    },
  );
  tenant = await bootstrapTenant(env, 'Cluster Test', 'admin@cluster.test');
  const started = await Promise.all([
    startServerProcess('api', env, { name: 'api-1' }),
    startServerProcess('api', env, { name: 'api-2' }),
    startServerProcess('worker', env, { name: 'worker-1' }),
    startServerProcess('worker', env, { name: 'worker-2 (killed last)' }),
  ]);
  apis = started.slice(0, 2);
  workers = started.slice(2);
}, 90_000);

afterAll(async () => {
  await killAll();
  await Promise.all([llm?.close(), rr?.close()]);
  await stopAllRedisClusters();
  await database?.drop();
}, 30_000);

async function newThread(api: ServerProcess, title: string): Promise<string> {
  const res = await http(api.baseUrl(), 'POST', '/api/v1/chat/threads', { headers: tenant.headers, body: { title } });
  expect(res.status, res.text).toBe(201);
  return res.body.id as string;
}

async function sendQueued(api: ServerProcess, threadId: string, content: string): Promise<string> {
  const res = await http(api.baseUrl(), 'POST', `/api/v1/chat/threads/${threadId}/messages/queued`, { headers: tenant.headers, body: { content } });
  expect(res.status, res.text).toBe(202);
  expect(res.body.degraded, res.text).toBeUndefined();
  return res.body.data.tracking.batchId as string;
}

async function batch(api: ServerProcess, batchId: string): Promise<{ status: string; completedJobs: number; totalJobs: number }> {
  const res = await http(api.baseUrl(), 'GET', `/api/v1/chat/batch/${batchId}/results`, { headers: tenant.headers });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

async function waitForAllRuns(db: TestDatabase, total: number, timeoutMs: number): Promise<void> {
  await waitUntil(
    async () => {
      const { rows } = await db.pool.query<{ open: number; total: number }>(
        `select count(*) filter (where finished_at is null)::int as open, count(*)::int as total from runs`,
      );
      return rows[0]!.total === total && rows[0]!.open === 0;
    },
    {
      timeoutMs,
      intervalMs: 100,
      what: `${total} runs finished`,
      details: async () => JSON.stringify((await db.pool.query(`select stage, status, count(*)::int from run_steps group by 1, 2 order by 1, 2`)).rows),
    },
  );
}

/** Every run has exactly one reply, and within each thread the replies follow the messages' order. */
async function expectOneReplyEachInOrder(db: TestDatabase, runIds: readonly string[]): Promise<void> {
  const { rows } = await db.pool.query<{ run_id: string; thread_id: string; user_seq: string; replies: string[] }>(
    `select u.run_id, u.thread_id, u.seq as user_seq,
            coalesce(array_agg(a.seq::text order by a.seq) filter (where a.id is not null), '{}') as replies
       from messages u left join messages a on a.run_id = u.run_id and a.role = 'assistant'
      where u.role = 'user' and u.run_id = any($1::uuid[])
      group by u.run_id, u.thread_id, u.seq
      order by u.thread_id, u.seq`,
    [runIds],
  );
  expect(rows).toHaveLength(runIds.length);
  for (const row of rows) expect(row.replies, `run ${row.run_id}`).toHaveLength(1);
  const byThread = new Map<string, number[]>();
  for (const row of rows) byThread.set(row.thread_id, [...(byThread.get(row.thread_id) ?? []), Number(row.replies[0])]);
  for (const [threadId, seqs] of byThread) expect(seqs, `thread ${threadId}`).toEqual([...seqs].sort((a, b) => a - b));
}

describe('two api and two worker processes on a three-master Redis Cluster', () => {
  it('complete messages sent through both APIs, one reply each in thread order, the queues spread over the nodes', async () => {
    const db = database!;
    const threads = await Promise.all(Array.from({ length: 6 }, (_, t) => newThread(apis[t % 2]!, `cluster thread ${t}`)));
    const batchIds = (
      await Promise.all(
        threads.map(async (threadId, t) => {
          const ids: string[] = [];
          for (let m = 0; m < 3; m++) ids.push(await sendQueued(apis[(t + m) % 2]!, threadId, `Thread ${t}, note ${m}: a short update for the press team.`));
          return ids;
        }),
      )
    ).flat();
    await waitForAllRuns(db, batchIds.length, 60_000);
    for (const [i, batchId] of batchIds.entries()) expect((await batch(apis[(i + 1) % 2]!, batchId)).status).toBe('completed');
    await expectOneReplyEachInOrder(db, batchIds);
    // Every reply came from the workers' LLM calls, one call per message.
    expect(llm!.chatRequests()).toHaveLength(batchIds.length);

    // Each queue's keys are on one node: the one that serves its own hash tag's slot, and the
    // queues' tags are five different slots (which nodes they fall on is up to the hash).
    const keys = await cluster!.keysByNode(`{${prefix}:*`);
    const nodeOfQueue = new Map<string, Set<number>>();
    for (const [port, list] of keys) {
      for (const key of list) {
        const queue = /^\{[^:}]+:([^}]+)\}/.exec(key)?.[1];
        if (queue) nodeOfQueue.set(queue, (nodeOfQueue.get(queue) ?? new Set()).add(port));
      }
    }
    const queues = stageOrder(CATALOG).map((stage) => CATALOG[stage].queue);
    for (const queue of queues) expect([...(nodeOfQueue.get(queue) ?? [])], `queue ${queue}`).toHaveLength(1);
    const client = cluster!.client();
    const ranges = await client.cluster('SLOTS');
    const slots: number[] = [];
    for (const queue of queues) {
      const slot = Number(await client.cluster('KEYSLOT', `{${prefix}:${queue}}`));
      slots.push(slot);
      const owner = ranges.find(([start, end]) => slot >= start && slot <= end)?.[2]?.[1];
      expect([...nodeOfQueue.get(queue)!][0], `queue ${queue} (slot ${slot})`).toBe(owner);
    }
    expect(new Set(slots).size).toBe(queues.length);
  }, 90_000);

  it('keeps the RocketReach global concurrency across both workers', async () => {
    const db = database!;
    const before = (await db.pool.query<{ n: number }>('select count(*)::int as n from runs')).rows[0]!.n;
    const people = ['Ada Lovelace', 'Brian Kernighan', 'Chloe Zhao', 'Dmitri Mendeleev', 'Elena Ferrante', 'Farid Haque'];
    const accepted = await Promise.all(
      people.map((name, i) =>
        http(apis[i % 2]!.baseUrl(), 'POST', '/api/v1/chat/comprehensive', {
          headers: tenant.headers,
          body: { message: `How do I reach ${name} at Northwind Media?`, contacts: [{ name, employer: 'Northwind Media' }] },
        }),
      ),
    );
    for (const res of accepted) expect(res.status, res.text).toBe(202);
    await waitForAllRuns(db, before + people.length, 60_000);
    expect(rr!.requestsTo('/person/lookup')).toHaveLength(people.length);
    expect(rr!.maxConcurrent).toBeLessThanOrEqual(ROCKETREACH_GLOBAL);
    for (const res of accepted) {
      const doc = await batch(apis[0]!, res.body.data.tracking.batchId);
      expect(doc.status).toBe('completed');
    }
  }, 90_000);

  it('cancels an active LLM job and moves the thread on', async () => {
    const db = database!;
    const fake = llm!;
    fake.setLatency(10_000);
    const threadId = await newThread(apis[0]!, 'cancel thread');
    const abortedBefore = fake.aborted;
    const first = await sendQueued(apis[0]!, threadId, 'Write a statement about the outage.');
    await fake.waitFor((f) => f.inFlight > 0, 15_000);
    fake.setLatency(LLM_LATENCY_MS);
    const second = await sendQueued(apis[1]!, threadId, 'And a shorter one for social media.');
    const res = await http(apis[1]!.baseUrl(), 'POST', '/api/v1/chat/jobs/cancel', {
      headers: tenant.headers,
      body: { jobIds: [`${first}.openai`], reason: 'changed my mind' },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.results).toEqual([{ jobId: `${first}.openai`, cancelled: true, previousState: 'active' }]);
    await fake.waitFor((f) => f.aborted > abortedBefore, 5_000);
    const cancelledAt = Date.now();
    await waitUntil(async () => (await batch(apis[0]!, second)).status === 'completed', { timeoutMs: 10_000, intervalMs: 50, what: 'the next message answered' });
    const nextMs = Date.now() - cancelledAt;
    expect((await batch(apis[0]!, first)).status).toBe('cancelled');
    const replies = await db.pool.query<{ run_id: string }>(`select run_id from messages where role = 'assistant' and thread_id = $1`, [threadId]);
    expect(replies.rows.map((row) => row.run_id)).toEqual([second]);
    console.info(`[cluster] cancel → next message of the thread answered in ${nextMs} ms`);
  }, 60_000);

  it('finishes every run exactly once when a worker is SIGKILLed mid-load', async () => {
    const db = database!;
    const fake = llm!;
    fake.setLatency(400);
    const before = (await db.pool.query<{ n: number }>('select count(*)::int as n from runs')).rows[0]!.n;
    const threads = await Promise.all(Array.from({ length: 8 }, (_, t) => newThread(apis[t % 2]!, `kill thread ${t}`)));
    const batchIds: string[] = [];
    const posting = Promise.all(
      threads.map(async (threadId, t) => {
        for (let m = 0; m < 3; m++) batchIds.push(await sendQueued(apis[(t + m) % 2]!, threadId, `Thread ${t}, note ${m}: brief the spokesperson.`));
      }),
    );
    posting.catch(() => undefined); // awaited below
    // More LLM calls in flight than one worker's concurrency: the victim holds some of them.
    await fake.waitFor((f) => f.inFlight >= OPENAI_CONCURRENCY + 2, 30_000);
    const victim = workers[1]!;
    victim.signal('SIGKILL');
    expect((await victim.waitForExit(10_000)).signal).toBe('SIGKILL');
    await posting;
    await waitForAllRuns(db, before + batchIds.length, 60_000);
    expect(workers[0]!.exit).toBeUndefined();
    for (const batchId of batchIds) expect((await batch(apis[0]!, batchId)).status).toBe('completed');
    await expectOneReplyEachInOrder(db, batchIds);
    const steps = await db.pool.query<{ status: string; n: number }>(
      `select status, count(*)::int as n from run_steps where run_id = any($1::uuid[]) group by status`,
      [batchIds],
    );
    expect(steps.rows).toEqual([{ status: 'completed', n: batchIds.length * 5 }]);
  }, 90_000);
});
