/**
 * Real processes: a `start` process on a PostgreSQL of the test's own (a temporary data
 * directory) and a private Redis, the loopback fake LLM at 300 ms a reply. While messages stream
 * in over several threads, PostgreSQL is crashed (SIGKILL of every server process: commits not yet
 * written from the WAL buffers are lost, as step completions committed without waiting for their
 * flush can be) and started again on the same directory.
 * (The WAL writer is slowed down to 10 s, so that the completions committed since the last
 * synchronous commit are indeed lost.) Every message that was accepted (202)
 * must complete with exactly one reply, within RECOVERY_BOUND_MS of PostgreSQL accepting
 * connections again — well before the reconciler's minute-scale sweep (RECONCILE_AFTER_MS stays
 * at its 60 s default): the server notices the restart and re-drives the open runs at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { startPostgresServer, stopAllPostgresServers, type PostgresServer } from '../../support/postgres-server.js';
import { bootstrapTenant, http, killAll, serverEnv, startServerProcess, waitUntil, type ProcessTenant, type ServerProcess } from '../../support/processes.js';
import { startRedisServer, stopAllRedisServers } from '../../support/redis-server.js';

const SENDERS = 8;
const LLM_LATENCY_MS = 300;
/** PostgreSQL ready again → every accepted message answered. */
const RECOVERY_BOUND_MS = 15_000;

let postgres: PostgresServer;
let fake: FakeOpenAiServer | undefined;
let server: ServerProcess;
let tenant: ProcessTenant;
let databaseUrl: string;

beforeAll(async () => {
  const [pgServer, redis, llm] = await Promise.all([startPostgresServer({ settings: { wal_writer_delay: '10000ms' } }), startRedisServer(), startFakeOpenAi({ apiKey: 'test', latencyMs: LLM_LATENCY_MS })]);
  postgres = pgServer;
  fake = llm;
  databaseUrl = await postgres.createDatabase('honeyjar');
  const env = serverEnv(
    { databaseUrl, prefix: 'pg-restart' },
    { REDIS_URL: redis.url, OPENAI_API_KEY: 'test', OPENAI_BASE_URL: llm.url, RATE_LIMIT_MAX: '100000' },
  );
  tenant = await bootstrapTenant(env, 'PG Restart', 'admin@pg-restart.test');
  server = await startServerProcess('start', env, { name: 'start' });
}, 90_000);

afterAll(async () => {
  await killAll();
  await fake?.close();
  await stopAllRedisServers();
  await stopAllPostgresServers();
}, 30_000);

async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 2_000 });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL restarted mid-load', () => {
  it('every accepted message completes with one reply, soon after PostgreSQL is back', async () => {
    const base = server.baseUrl();
    const threadIds: string[] = [];
    for (let t = 0; t < SENDERS; t++) {
      const res = await http(base, 'POST', '/api/v1/chat/threads', { headers: tenant.headers, body: { title: `restart ${t}` } });
      expect(res.status, res.text).toBe(201);
      threadIds.push(res.body.id);
    }
    const accepted: string[] = [];
    let refused = 0;
    let sending = true;
    // Each sender posts to its thread one message after another, through the crash and after it.
    const senders = threadIds.map(async (threadId, t) => {
      for (let m = 0; sending; m++) {
        try {
          const res = await http(base, 'POST', `/api/v1/chat/threads/${threadId}/messages/queued`, {
            headers: tenant.headers,
            body: { content: `Sender ${t}, note ${m}: one line for the newsletter about the river clean-up.` },
            timeoutMs: 10_000,
          });
          if (res.status === 202) accepted.push(res.body.data.tracking.batchId);
          else refused++;
        } catch {
          refused++;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });

    await waitUntil(() => accepted.length >= SENDERS * 3 && fake!.inFlight > 0, { timeoutMs: 30_000, what: 'load under way' });
    const crashedAt = Date.now();
    await postgres.crash();
    await postgres.restart();
    const backAt = Date.now();
    // More load after the restart, then stop sending.
    const acceptedAtBack = accepted.length;
    await waitUntil(() => accepted.length >= acceptedAtBack + SENDERS, { timeoutMs: 20_000, what: 'messages accepted after the restart' });
    sending = false;
    await Promise.all(senders);

    const ids = [...accepted];
    await waitUntil(
      async () => {
        const rows = await query<{ open: number }>(`select count(*)::int as open from runs where id in (${ids.map((id) => `'${id}'`).join(',')}) and finished_at is null`).catch(() => [{ open: -1 }]);
        return rows[0]!.open === 0;
      },
      { timeoutMs: RECOVERY_BOUND_MS + 60_000, intervalMs: 100, what: 'every accepted message answered', details: () => server.tail(30) },
    );
    const recoveredMs = Date.now() - backAt;
    const restartLine = server.logs.find((l) => l.msg === 'PostgreSQL restarted: re-driving the runs that were open');
    console.info(
      `[pg-restart] ${ids.length} accepted (${refused} refused during the outage); PostgreSQL down ${backAt - crashedAt} ms; ` +
        `every accepted message answered ${recoveredMs} ms after it was back; restart noticed: ${restartLine ? 'yes' : 'no'}`,
    );
    expect(restartLine).toBeDefined();
    expect(recoveredMs).toBeLessThanOrEqual(RECOVERY_BOUND_MS);

    const runs = await query<{ id: string; status: string; replies: number }>(
      `select r.id, r.status::text as status, (select count(*)::int from messages m where m.run_id = r.id and m.role = 'assistant') as replies
         from runs r where r.id in (${ids.map((id) => `'${id}'`).join(',')})`,
    );
    expect(runs).toHaveLength(ids.length);
    expect(runs.filter((r) => r.status !== 'completed' || r.replies !== 1)).toEqual([]);
  }, 120_000);
});
