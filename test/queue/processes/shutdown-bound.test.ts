/**
 * Real processes: SIGTERM ends a `start` process with exit code 0 within SHUTDOWN_TIMEOUT_MS + 2 s,
 * whatever state Redis and PostgreSQL are in. Each cell has a server of its own on a private Redis
 * and a private PostgreSQL (test/support), with work in flight: queued messages in several threads
 * and a blocking one, each held in an LLM call that takes longer than the whole shutdown budget.
 * Then the cell breaks what it breaks (nothing; Redis killed or hung; PostgreSQL crashed or hung;
 * both hung), sends SIGTERM and times the exit. The cells are set up side by side; their shutdowns
 * are timed one at a time, so that no figure includes another cell's start-up or exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { startPostgresServer, stopAllPostgresServers, type PostgresServer } from '../../support/postgres-server.js';
import { http, killAll, serverEnv, startServerProcess, type HttpResponse, type LogLine, type ServerProcess } from '../../support/processes.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../../support/redis-server.js';

const SHUTDOWN_TIMEOUT_MS = 2_000;
const BOUND_MS = SHUTDOWN_TIMEOUT_MS + 2_000;
/** Longer than the whole test: a shutdown that waits for the provider cannot meet the bound. */
const LLM_LATENCY_MS = 120_000;
/** How long the test waits for an exit at all, so that a shutdown over the bound is still measured. */
const EXIT_WAIT_MS = 20_000;
const QUEUED_THREADS = 3;
const QUEUED_PER_THREAD = 2;

interface Cell {
  name: string;
  /** Puts Redis and PostgreSQL in the cell's state just before SIGTERM. */
  breakServers(redis: RedisServer, postgres: PostgresServer): Promise<void> | void;
}

const CELLS: Cell[] = [
  { name: 'Redis and PostgreSQL up', breakServers: () => undefined },
  { name: 'Redis SIGKILLed', breakServers: (redis) => redis.kill() },
  { name: 'Redis hung (SIGSTOP)', breakServers: (redis) => redis.hang() },
  { name: 'PostgreSQL crashed (SIGKILL)', breakServers: (_redis, postgres) => postgres.crash() },
  { name: 'PostgreSQL hung (SIGSTOP)', breakServers: (_redis, postgres) => postgres.hang() },
  {
    name: 'Redis and PostgreSQL hung',
    breakServers: (redis, postgres) => {
      redis.hang();
      postgres.hang();
    },
  },
];

const fakes: FakeOpenAiServer[] = [];

afterAll(async () => {
  await killAll();
  await Promise.all(fakes.map((fake) => fake.close()));
  await stopAllRedisServers();
  await stopAllPostgresServers();
}, 60_000);

/** The organization and admin token a first start prints on stdout. */
function firstStartHeaders(server: ServerProcess): Record<string, string> {
  const orgId = server.lines.map((line) => /^\s*x-organization-id: (\S+)$/.exec(line)?.[1]).find(Boolean);
  const token = server.lines.map((line) => /^\s*Authorization: Bearer (\S+)$/.exec(line)?.[1]).find(Boolean);
  if (!orgId || !token) throw new Error(`${server.name}: no first-start token printed\n${server.tail()}`);
  return { authorization: `Bearer ${token}`, 'x-organization-id': orgId };
}

/** A cell's own Redis, PostgreSQL, fake LLM and `start` process, with work in flight. */
async function setUpCell(cell: Cell) {
  const [redis, postgres, fake] = await Promise.all([
    startRedisServer(),
    startPostgresServer(),
    startFakeOpenAi({ apiKey: 'test', latencyMs: LLM_LATENCY_MS }),
  ]);
  fakes.push(fake);
  const env = serverEnv(
    { databaseUrl: await postgres.createDatabase('honeyjar'), prefix: 'shutdown-bound' },
    {
      REDIS_URL: redis.url,
      OPENAI_API_KEY: 'test',
      OPENAI_BASE_URL: fake.url,
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      RATE_LIMIT_MAX: '100000',
    },
  );
  const server = await startServerProcess('start', env, { name: `start (${cell.name})`, readyTimeoutMs: 50_000 });
  const headers = firstStartHeaders(server);
  const base = server.baseUrl();
  const newThread = async () => {
    const res = await http(base, 'POST', '/api/v1/chat/threads', { headers, body: {} });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  };

  const accepted: Array<Promise<HttpResponse>> = [];
  for (let t = 0; t < QUEUED_THREADS; t++) {
    const threadId = await newThread();
    for (let m = 0; m < QUEUED_PER_THREAD; m++) {
      accepted.push(
        http(base, 'POST', `/api/v1/chat/threads/${threadId}/messages/queued`, {
          headers,
          body: { content: `Queued ${t}.${m}: outline a short media statement about the new office opening.` },
        }),
      );
    }
  }
  const blockingThread = await newThread();
  // Cut off by the shutdown (its LLM call outlasts it): it is in flight when the signal comes.
  const blocking = http(base, 'POST', `/api/v1/chat/threads/${blockingThread}/messages`, {
    headers,
    body: { content: 'Blocking: suggest a headline for the quarterly newsletter.' },
    timeoutMs: 180_000,
  }).catch((error: Error) => error);
  for (const res of await Promise.all(accepted)) expect(res.status, res.text).toBe(202);
  await fake.waitFor((f) => f.inFlight >= QUEUED_THREADS + 1, 30_000);
  return { redis, postgres, fake, server, blocking };
}

type SetUpCell = Awaited<ReturnType<typeof setUpCell>>;
const setUps = new Map<string, PromiseSettledResult<SetUpCell>>();

describe('SIGTERM with work in flight', () => {
  // Every cell is set up side by side; the shutdowns are then timed one at a time (below).
  beforeAll(async () => {
    const settled = await Promise.allSettled(CELLS.map((cell) => setUpCell(cell)));
    CELLS.forEach((cell, index) => {
      setUps.set(cell.name, settled[index]!);
    });
  }, 120_000);

  for (const cell of CELLS) {
    it(
      `${cell.name}: exits 0 within SHUTDOWN_TIMEOUT_MS + 2 s`,
      async () => {
        const setUp = setUps.get(cell.name)!;
        if (setUp.status === 'rejected') throw setUp.reason;
        const { redis, postgres, fake, server, blocking } = setUp.value;
        // Each thread's first message and the blocking one are still inside an LLM call.
        expect(fake.inFlight).toBeGreaterThanOrEqual(QUEUED_THREADS + 1);
        await cell.breakServers(redis, postgres);
        const signalAt = Date.now();
        server.signal('SIGTERM');
        const exit = await server.waitForExit(EXIT_WAIT_MS).catch(() => undefined);
        const exitMs = exit ? exit.at - signalAt : undefined;
        const received = server.logs.find((line) => line.msg === 'SIGTERM received');
        const complete = server.logs.find((line) => line.msg === 'shutdown complete');
        const incomplete = server.logs.find((line) => line.msg === 'shutdown incomplete');
        const at = (line: LogLine | undefined) => (line?.time === undefined ? '-' : `${line.time - signalAt} ms`);
        console.info(
          `[shutdown-bound] ${cell.name}: ${exit ? `code ${exit.code ?? exit.signal} after ${exitMs} ms` : `no exit within ${EXIT_WAIT_MS} ms`}` +
            ` (signal handled at ${at(received)}, shutdown complete at ${at(complete)})` +
            (incomplete ? `, watchdog: pending ${JSON.stringify(incomplete.pending)}` : '') +
            (complete?.leftBehind ? `, left behind ${JSON.stringify(complete.leftBehind)}` : ''),
        );
        await server.kill();
        // Answered or cut off, never left hanging.
        expect(await blocking).toBeDefined();

        expect(exit, `no exit within ${EXIT_WAIT_MS} ms\n${server.tail(30)}`).toBeDefined();
        expect(exit).toMatchObject({ code: 0, signal: null });
        expect(exitMs!).toBeLessThanOrEqual(BOUND_MS);
        expect(received).toBeDefined();
      },
      60_000,
    );
  }
});
