/**
 * Real processes: cancelling a run whose reply is under way lets the next message of its thread
 * go at once, whoever drives it — the queue workers, or another process's in-process driver (the
 * queues unreachable: degraded mode), which hears of the cancel through PostgreSQL's
 * LISTEN/NOTIFY rather than at its next poll. The next reply's own LLM call takes 200 ms; the
 * bound is from the cancel's answer to that reply being stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { freePort } from '../../support/ports.js';
import { bootstrapTenant, http, killAll, serverEnv, startServerProcess, waitUntil, type ProcessTenant, type ServerProcess } from '../../support/processes.js';
import { startRedisServer, stopAllRedisServers } from '../../support/redis-server.js';

/** Long enough that the first reply is still being made when it is cancelled. */
const HELD_LATENCY_MS = 20_000;
const NEXT_LATENCY_MS = 200;
/** Cancel answered → the next message's reply stored. */
const NEXT_RUN_BOUND_MS = 1_500;

let database: TestDatabase | undefined;
let fake: FakeOpenAiServer;
let tenant: ProcessTenant;
let env: (redisUrl: string, prefix: string) => Record<string, string>;

beforeAll(async () => {
  [database, fake] = await Promise.all([createTestDatabase(), startFakeOpenAi({ apiKey: 'test', latencyMs: HELD_LATENCY_MS })]);
  env = (redisUrl, prefix) =>
    serverEnv({ databaseUrl: database!.url, prefix }, { REDIS_URL: redisUrl, OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, RATE_LIMIT_MAX: '100000' });
  tenant = await bootstrapTenant(env('redis://127.0.0.1:1', 'cancel-next'), 'Cancel Next', 'admin@cancel-next.test');
}, 60_000);

afterAll(async () => {
  await killAll();
  await fake?.close();
  await stopAllRedisServers();
  await database?.drop();
}, 30_000);

async function stepsCompleted(runId: string): Promise<number> {
  const { rows } = await database!.pool.query<{ n: number }>(`select count(*)::int as n from run_steps where run_id = $1 and status = 'completed'`, [runId]);
  return rows[0]!.n;
}

async function finished(runId: string): Promise<{ status: string; finished: boolean }> {
  const { rows } = await database!.pool.query<{ status: string; finished: boolean }>(`select status::text, finished_at is not null as finished from runs where id = $1`, [runId]);
  return rows[0]!;
}

/**
 * Two messages in one thread: the first sent to `first` and held in its LLM call, the second sent
 * to `second` and waiting for its turn. Then the first is cancelled through `first`; answers the
 * time from the cancel's answer to the second's reply.
 */
async function cancelFirst(first: ServerProcess, second: ServerProcess, degraded: boolean): Promise<number> {
  fake.setLatency(HELD_LATENCY_MS);
  const thread = await http(first.baseUrl(), 'POST', '/api/v1/chat/threads', { headers: tenant.headers, body: { title: 'cancel' } });
  expect(thread.status, thread.text).toBe(201);
  const send = async (server: ServerProcess, content: string) => {
    const res = await http(server.baseUrl(), 'POST', `/api/v1/chat/threads/${thread.body.id}/messages/queued`, { headers: tenant.headers, body: { content } });
    expect(res.status, res.text).toBe(202);
    expect(res.body.degraded === true).toBe(degraded);
    return res.body.data.tracking.batchId as string;
  };
  const inFlight = fake.inFlight;
  const firstRun = await send(first, 'The first message: a long statement about the merger.');
  await fake.waitFor((f) => f.inFlight > inFlight, 20_000);
  const secondRun = await send(second, 'The second message: a short follow-up line.');
  // Every step of the second run but its reply has finished; the reply waits for the first run.
  await waitUntil(async () => (await stepsCompleted(secondRun)) === 4, { timeoutMs: 10_000, what: 'the second run to wait for its turn' });
  expect(await finished(secondRun)).toEqual({ status: 'partial', finished: false });
  fake.setLatency(NEXT_LATENCY_MS);

  const cancel = await http(first.baseUrl(), 'POST', '/api/v1/chat/jobs/cancel', { headers: tenant.headers, body: { jobIds: [`${firstRun}.openai`] } });
  const cancelledAt = Date.now();
  expect(cancel.status, cancel.text).toBe(200);
  expect(cancel.body.summary.cancelled).toBe(1);
  await waitUntil(async () => (await finished(secondRun)).finished, { timeoutMs: 30_000, intervalMs: 10, what: 'the second run to finish' });
  const nextMs = Date.now() - cancelledAt;
  expect(await finished(firstRun)).toEqual({ status: 'cancelled', finished: true });
  expect(await finished(secondRun)).toEqual({ status: 'completed', finished: true });
  const { rows } = await database!.pool.query<{ run_id: string }>(`select run_id from messages where role = 'assistant' and thread_id = $1`, [thread.body.id]);
  expect(rows.map((r) => r.run_id)).toEqual([secondRun]);
  return nextMs;
}

describe('a cancel moves the thread on at once', () => {
  it('queue-driven: the next run completes promptly', async () => {
    const redis = await startRedisServer();
    const server = await startServerProcess('start', env(redis.url, 'cancel-next-queued'), { name: 'start (queues)' });
    const nextMs = await cancelFirst(server, server, false);
    console.info(`[cancel-next] queue-driven: the next run's reply ${nextMs} ms after the cancel (its LLM call ${NEXT_LATENCY_MS} ms)`);
    expect(nextMs).toBeLessThanOrEqual(NEXT_RUN_BOUND_MS);
    await server.kill();
  }, 60_000);

  it('driven in-process by another process (queues unreachable): the next run completes promptly', async () => {
    const unreachable = `redis://127.0.0.1:${await freePort()}`;
    const [a, b] = await Promise.all([
      startServerProcess('start', env(unreachable, 'cancel-next-degraded'), { name: 'start-a (degraded)' }),
      startServerProcess('start', env(unreachable, 'cancel-next-degraded'), { name: 'start-b (degraded)' }),
    ]);
    const nextMs = await cancelFirst(a, b, true);
    console.info(`[cancel-next] in-process in another process: the next run's reply ${nextMs} ms after the cancel (its LLM call ${NEXT_LATENCY_MS} ms)`);
    expect(nextMs).toBeLessThanOrEqual(NEXT_RUN_BOUND_MS);
  }, 60_000);
});
