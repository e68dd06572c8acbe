/**
 * Real processes: a `start` process (HTTP and every worker) with the OpenAI provider pointed at the
 * loopback fake (500 ms per completion) gets ~30 queued messages and a few blocking ones at once.
 * Once the server has received every one of them, and some are still being answered, it gets
 * SIGTERM: every request must get its proper answer (202 / 200, no reset), the process must exit 0
 * within SHUTDOWN_TIMEOUT_MS plus a margin, logging its shutdown. A fresh `start` process on the
 * same database and queue prefix then finishes every accepted batch with exactly one reply.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  bootstrapTenant,
  deleteRedisKeys,
  http,
  killAll,
  serverEnv,
  startServerProcess,
  waitUntil,
  type HttpResponse,
  type LogLine,
  type ProcessTenant,
  type ServerProcess,
} from '../../support/processes.js';

const QUEUED_THREADS = 6;
const QUEUED_PER_THREAD = 5;
const BLOCKING = 3;
const TOTAL_REQUESTS = QUEUED_THREADS * QUEUED_PER_THREAD + BLOCKING;
const LLM_LATENCY_MS = 500;
const SHUTDOWN_TIMEOUT_MS = 2_000;
/** Start-up is not part of it; the blocking requests (one LLM call each) and closing connections are. */
const EXIT_MARGIN_MS = 8_000;

let database: TestDatabase | undefined;
let fake: FakeOpenAiServer | undefined;
let prefix: string | undefined;
let env: Record<string, string>;
let tenant: ProcessTenant;

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `test-${database.name}`;
  fake = await startFakeOpenAi({ apiKey: 'test', latencyMs: LLM_LATENCY_MS });
  env = serverEnv(
    { databaseUrl: database.url, prefix },
    {
      OPENAI_API_KEY: 'test',
      OPENAI_BASE_URL: fake.url,
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      QUEUE_STALLED_INTERVAL_MS: '1000',
      QUEUE_LOCK_DURATION_MS: '2000',
      RATE_LIMIT_MAX: '100000',
    },
  );
  tenant = await bootstrapTenant(env, 'Drain Test', 'admin@drain.test');
}, 90_000);

afterAll(async () => {
  await killAll();
  await fake?.close();
  if (prefix) await deleteRedisKeys(prefix);
  await database?.drop();
}, 30_000);

type Outcome = { kind: 'queued' | 'blocking'; response?: HttpResponse; error?: Error; answeredAt?: number };

const isMessagePost = (line: LogLine) =>
  line.msg === 'incoming request' && line.req?.method === 'POST' && /\/messages(\/queued)?$/.test(line.req.url ?? '');

describe('SIGTERM on a start process under load', () => {
  it('answers every request it received, exits 0, and a new process finishes every batch once', async () => {
    const db = database!;
    const llm = fake!;
    const headers = tenant.headers;
    const first: ServerProcess = await startServerProcess('start', env, { name: 'start-1 (SIGTERM)' });
    const base = first.baseUrl();

    const newThread = async (title: string) => {
      const res = await http(base, 'POST', '/api/v1/chat/threads', { headers, body: { title } });
      expect(res.status, res.text).toBe(201);
      return res.body.id as string;
    };
    const queuedThreads: string[] = [];
    for (let t = 0; t < QUEUED_THREADS; t++) queuedThreads.push(await newThread(`queued ${t}`));
    const blockingThreads: string[] = [];
    for (let t = 0; t < BLOCKING; t++) blockingThreads.push(await newThread(`blocking ${t}`));

    // Everything at once, each request on its own connection.
    const outcomes: Outcome[] = [];
    const track = (kind: Outcome['kind'], request: Promise<HttpResponse>) => {
      const outcome: Outcome = { kind };
      outcomes.push(outcome);
      return request.then(
        (response) => {
          outcome.response = response;
          outcome.answeredAt = Date.now();
        },
        (error: Error) => {
          outcome.error = error;
          outcome.answeredAt = Date.now();
        },
      );
    };
    const requests: Array<Promise<void>> = [];
    for (let m = 0; m < QUEUED_PER_THREAD; m++) {
      queuedThreads.forEach((threadId, t) => {
        requests.push(
          track(
            'queued',
            http(base, 'POST', `/api/v1/chat/threads/${threadId}/messages/queued`, {
              headers,
              body: { content: `Queued ${t}.${m}: outline a short media statement about the new office opening.` },
            }),
          ),
        );
      });
    }
    blockingThreads.forEach((threadId, t) => {
      requests.push(
        track(
          'blocking',
          http(base, 'POST', `/api/v1/chat/threads/${threadId}/messages`, {
            headers,
            body: { content: `Blocking ${t}: suggest a headline for the quarterly newsletter.` },
            timeoutMs: 60_000,
          }),
        ),
      );
    });

    // SIGTERM the moment the server has received the last of them, while it is still answering some.
    let received = 0;
    await first.waitForLog((line) => isMessagePost(line) && ++received >= TOTAL_REQUESTS, 30_000, 'every request received');
    const signalAt = Date.now();
    first.signal('SIGTERM');
    const unansweredAtSignal = outcomes.filter((o) => o.answeredAt === undefined);
    const llmInFlightAtSignal = llm.inFlight;

    await Promise.all(requests);
    const exit = await first.waitForExit(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    const exitMs = exit.at - signalAt;

    // Every request got its proper answer; none was reset.
    expect(outcomes.filter((o) => o.error).map((o) => `${o.kind}: ${o.error!.message}`)).toEqual([]);
    // The blocking requests (an LLM call of 500 ms each) were all still being answered.
    expect(unansweredAtSignal.filter((o) => o.kind === 'blocking')).toHaveLength(BLOCKING);
    const queued = outcomes.filter((o) => o.kind === 'queued');
    const blocking = outcomes.filter((o) => o.kind === 'blocking');
    expect(queued.map((o) => o.response!.status)).toEqual(queued.map(() => 202));
    expect(blocking.map((o) => o.response!.status)).toEqual(blocking.map(() => 200));
    for (const o of blocking) {
      expect(o.response!.body.status, o.response!.text).toBe('completed');
      expect(o.response!.body.assistantMessage?.content).toEqual(expect.any(String));
    }

    // It exited 0, in time, and said so.
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    const messages = first.logs.map((line) => line.msg);
    expect(messages).toContain('SIGTERM received');
    expect(messages).toContain('shutting down: no new connections; finishing in-flight requests and active jobs');
    expect(messages).toContain('shutdown complete');

    const batchIds = queued.map((o) => o.response!.body.data.tracking.batchId as string);
    const openAfterFirst = await db.pool.query<{ n: number }>(`select count(*)::int as n from runs where finished_at is null`);

    // A fresh process on the same database and prefix finishes what was accepted.
    const second = await startServerProcess('start', { ...env, RECONCILE_INTERVAL_MS: '500', RECONCILE_AFTER_MS: '1000' }, { name: 'start-2' });
    await waitUntil(
      async () => {
        const { rows } = await db.pool.query<{ open: number; total: number }>(
          `select count(*) filter (where finished_at is null)::int as open, count(*)::int as total from runs`,
        );
        return rows[0]!.total === TOTAL_REQUESTS && rows[0]!.open === 0;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'every run finished after the restart',
        details: async () => {
          const { rows } = await db.pool.query(`select stage, status, count(*)::int from run_steps group by 1, 2 order by 1, 2`);
          return `${JSON.stringify(rows)}\n${second.tail()}`;
        },
      },
    );
    for (const batchId of batchIds) {
      const res = await http(second.baseUrl(), 'GET', `/api/v1/chat/batch/${batchId}/results`, { headers });
      expect(res.status, res.text).toBe(200);
      expect(res.body.status, `${batchId}: ${res.text}`).toBe('completed');
    }
    const replies = await db.pool.query<{ run_id: string; n: number }>(
      `select run_id, count(*)::int as n from messages where role = 'assistant' group by run_id`,
    );
    expect(replies.rows).toHaveLength(TOTAL_REQUESTS);
    expect(replies.rows.filter((row) => row.n !== 1)).toEqual([]);
    const steps = await db.pool.query<{ status: string; n: number }>(`select status, count(*)::int as n from run_steps group by status`);
    expect(steps.rows).toEqual([{ status: 'completed', n: TOTAL_REQUESTS * 5 }]);

    console.info(
      `[sigterm] unanswered at SIGTERM: ${unansweredAtSignal.filter((o) => o.kind === 'queued').length} queued + ` +
        `${unansweredAtSignal.filter((o) => o.kind === 'blocking').length} blocking of ${TOTAL_REQUESTS}, ` +
        `LLM calls in flight: ${llmInFlightAtSignal}, exit after ${exitMs} ms, ` +
        `runs open after the first process: ${openAfterFirst.rows[0]!.n}, ` +
        `reconciler passes that re-drove runs: ${second.logs.filter((l) => l.msg === 'reconciler re-drove unfinished runs').length}`,
    );
  }, 110_000);
});
