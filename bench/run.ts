/**
 * Benchmark of the queued chat endpoint: `npm run bench` (tsx bench/run.ts), `BENCH_QUICK=1` for a
 * ~5× shorter smoke run. Starts everything itself on loopback (a throw-away database and Redis
 * prefix, the real server as a child process, a floor server, a fake OpenAI server), runs every
 * scenario in one go, prints a table and writes bench/results/latest.json. Missed targets are
 * reported, not fatal; the exit code is non-zero only when the harness itself fails.
 *
 *   1 floor vs queued   req/s at 100 keep-alive connections, 2 s warm-up + 10 s, and their ratio
 *   2 ack latency       100 independent users × 1 queued message/s on average for 15 s: Poisson
 *                       arrivals (exponential gaps from a seeded generator, BENCH_SEED), open loop;
 *                       p50/p99 of the 202 from each message's scheduled time
 *   3 end-to-end        fake LLM with 1248 ms latency, 20 messages at 2/s, 202 → batch completed
 *   4 sustained         offline LLM, 50 connections for 20 s; poller clients read each thread's
 *                       messages over HTTP while the load runs: replies/s seen in the window after
 *                       a warm-up, the accept rate, then exactly one reply per accepted message;
 *                       the error of each 202's estimatedCompletion against the reply seen
 *   4c sustained on PG  scenario 4 again with the queues on PostgreSQL (QUEUE_BACKEND=postgres), in
 *                       the same run: replies/s and its ratio to scenario 4's (target ≥ 0.4)
 *   4b paced            the same processes offered BENCH_PACED_RATE msg/s (300) as Poisson arrivals
 *                       for 30 s: does it keep up (one reply each, seen within 1 s at p99), replies/s
 *   5 peak RSS          of each server process tree, sampled every 200 ms; API processes ≤ 250 MB
 *   6 fairness          organization A sends 3,000 messages as fast as it can (50 connections) while
 *                       organization B sends one every 200 ms; B's send → completed over HTTP
 *                       (p50 ≤ 300 ms, p99 ≤ 1 s) and A's throughput, with FAIRNESS=off and on
 *                       (each on a fresh database, an API and a worker process): A's within 10%;
 *                       BENCH_FAIR_FIRST=on runs the fair one first
 *   7 ttft, 8 streams   live results (bench/streams.bench.ts): time to first token at a streaming
 *                       client minus the fake LLM's own; 1,000 open event streams on one API process
 *   9 bare start        `npm start` → healthy on a bare machine (loopback-only network namespace, no
 *                       DATABASE_URL: the embedded PostgreSQL), first start ≤ 10 s, restart ≤ 5 s
 *                       (bench/bare-start.ts)
 *  10 door TTFT         one streaming /v1/chat/completions client, one request at a time, API and
 *                       workers in one process: time to first token at the client minus the fake
 *                       LLM's own (as it recorded it), p50 ≤ 30 ms (bench/lib/door.ts)
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startFakeOpenAi, type FakeOpenAiServer } from '../test/fakes/openai.fake.js';
import { peakInWindow, poissonSchedule } from './lib/arrivals.js';
import {
  closedLoop,
  createAgent,
  forEachLimited,
  httpRequest,
  openLoop,
  Outcomes,
  type HttpResponse,
} from './lib/http.js';
import {
  freePort,
  killAllSync,
  MemorySampler,
  postgresCpuSeconds,
  runToCompletion,
  spawnChild,
  stopAll,
  stopChild,
  systemCpuTicks,
  type Child,
  type TreeMemory,
} from './lib/procs.js';
import { ratePerSecond, ReplyWatcher, type ReplyAudit } from './lib/replies.js';
import { measureDoorTtft, type DoorTtftResult } from './lib/door.js';
import { percentile, round, sleep, summarize } from './lib/stats.js';
import { scenarioStreams, scenarioTtft, streamChecks, type StreamBenchDeps } from './streams.bench.js';
import { BARE_TARGETS, scenarioBareStart } from './bare-start.js';

// --- settings -------------------------------------------------------------------------------------

const QUICK = process.env.BENCH_QUICK === '1';
const SHRINK = QUICK ? 5 : 1;
const S = {
  connections: 100,
  warmupMs: 2_000 / SHRINK,
  measureMs: 10_000 / SHRINK,
  ackUsers: 100,
  ackRatePerUser: 1,
  ackDurationMs: 15_000 / SHRINK,
  e2eMessages: QUICK ? 5 : 20,
  e2eIntervalMs: 500,
  e2eLlmLatencyMs: 1_248,
  e2ePollMs: 10,
  e2eDeadlineMs: 30_000,
  sustainedConnections: 50,
  sustainedSendMs: 20_000 / SHRINK,
  /** Replies seen before this (from the first send) fill the pipeline and are left out of the rate. */
  sustainedWarmupMs: 3_000 / SHRINK,
  sustainedMaxMessages: QUICK ? 2_000 : 10_000,
  /**
   * The backlog left when the sends end drains for the one-reply check: until every reply is seen,
   * no new one has been seen for `drainStallMs`, or this long after the first send.
   */
  sustainedDeadlineMs: QUICK ? 60_000 : 180_000,
  drainStallMs: 15_000,
  pacedRatePerSec: Number(process.env.BENCH_PACED_RATE || 300),
  doorRequests: QUICK ? 20 : 60,
  doorWarmup: 5,
  doorLlmLatencyMs: 300,
  pacedWarmupMs: 3_000 / SHRINK,
  pacedUsers: 100,
  pacedSendMs: 30_000 / SHRINK,
  pacedDrainMs: QUICK ? 30_000 : 120_000,
  /** Poller clients reading threads' messages (one request in flight each), and how often a thread is read at most. */
  pollers: 4,
  pollIntervalMs: 250,
  auditConcurrency: 8,
  /** Seeds the Poisson arrivals: the same seed offers the same schedule. */
  seed: Number(process.env.BENCH_SEED || 9),
  fairFloodMessages: QUICK ? 1_000 : 3_000,
  fairFloodConnections: 50,
  fairSteadyIntervalMs: 200,
  /**
   * B's batches are read every 25 ms, at most 4 reads in flight in all: in the unfair run dozens
   * are open at once, and unbounded reads would load the API A sends to far more than in the fair one.
   */
  fairPollMs: 25,
  fairPollReaders: 4,
  fairDeadlineMs: QUICK ? 120_000 : 240_000,
  readyTimeoutMs: 60_000,
  hardLimitMs: QUICK ? 300_000 : 660_000,
};
const TARGETS = {
  ratio: 0.65,
  /** Sustained replies/s with the queues on PostgreSQL, against Redis in the same run. */
  postgresTransportRatio: 0.4,
  ackP99Ms: 20,
  e2eP50Ms: 1_248 + 50,
  sustainedPerSec: 300,
  /** The paced scenario keeps up when every message got one reply, seen by a client within this at p99. */
  pacedLagP99Ms: 1_000,
  /** Peak resident memory of an API process (its process tree), in MB (10^6 bytes). */
  apiRssMb: 250,
  /** Fairness: B's send → completed while A floods, and A's throughput against the unfair figure. */
  fairBP50Ms: 300,
  fairBP99Ms: 1_000,
  fairThroughputRatio: 0.9,
  /** Time to first token at a streaming /v1/chat/completions client beyond the fake LLM's own, p50. */
  doorOverheadP50Ms: 30,
};

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const RID = randomBytes(4).toString('hex');
/** BENCH_PG_PORT: another PostgreSQL on this machine (its socket in BENCH_PG_SOCKET's directory), e.g. one of the bench's own. */
const PG_PORT = Number(process.env.BENCH_PG_PORT || 5432);
const PG_BASE = `postgres://postgres@127.0.0.1:${PG_PORT}`;
/**
 * The servers, the floor server included, reach PostgreSQL through its Unix socket when there is
 * one (as processes on the database's machine would), else over loopback TCP. BENCH_PG_SOCKET
 * names the socket directory (Debian's by default); BENCH_PG_SOCKET= (empty) forces TCP.
 */
const PG_SOCKET_DIR = process.env.BENCH_PG_SOCKET ?? '/var/run/postgresql';
const PG_TRANSPORT = PG_SOCKET_DIR && existsSync(`${PG_SOCKET_DIR}/.s.PGSQL.${PG_PORT}`) ? `unix socket ${PG_SOCKET_DIR}` : `tcp 127.0.0.1:${PG_PORT}`;
const PG_QUERY = PG_TRANSPORT.startsWith('unix') ? `?host=${encodeURIComponent(PG_SOCKET_DIR)}` : '';
/** Each server start gets its own database and queue prefix, so one's backlog cannot reach the other. */
interface Instance {
  dbName: string;
  databaseUrl: string;
  prefix: string;
  /** Where its queues are (QUEUE_BACKEND). */
  transport: 'redis' | 'postgres';
}
const instance = (suffix: string, transport: Instance['transport'] = 'redis'): Instance => ({
  dbName: `honeyjar_bench_${RID}${suffix ? `_${suffix}` : ''}`,
  databaseUrl: `${PG_BASE}/honeyjar_bench_${RID}${suffix ? `_${suffix}` : ''}${PG_QUERY}`,
  prefix: `bench-${RID}${suffix ? `-${suffix}` : ''}`,
  transport,
});
const MAIN = instance('');
const E2E = instance('e2e');
const SUSTAINED = instance('sustained');
const SUSTAINED_PG = instance('sustainedpg', 'postgres');
const PACED = instance('paced');
const FAIR_OFF = instance('fair-off');
const FAIR_ON = instance('fair-on');
const DOOR = instance('door');
/** BENCH_REDIS_URL: a Redis of the bench's own (its command counts and CPU are then the servers' alone). */
const REDIS_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
const FLOOR_PREFIX = `bench-${RID}-floor`;
const STAGES = 5;
/** BENCH_ONLY=floor,queued,ack,sustained,sustained-pg,paced,e2e,fairness,ttft,streams,bare,door runs a subset (default: all). */
const ONLY = new Set((process.env.BENCH_ONLY || 'floor,queued,ack,sustained,sustained-pg,paced,e2e,fairness,ttft,streams,bare,door').split(',').map((s) => s.trim()));
const TTFT = instance('ttft');
const STREAMS = instance('streams');
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

// --- small helpers --------------------------------------------------------------------------------

const log = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

/** The environment of a child: ours minus anything that would change the server's providers. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(OPENAI_|ROCKETREACH_|INTENT_CLASSIFIER|DATABASE_|REDIS_|QUEUE_|CONCURRENCY_|RATE_LIMIT_|RECONCILE_|SHUTDOWN_|PORT$|HOST$|LOG_LEVEL|BOOTSTRAP_|BENCH_)/.test(key)) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** BENCH_SERVER_ENV="NAME=value NAME=value": extra server settings (e.g. to lift a queue limiter). */
const SERVER_ENV_OVERRIDES: Record<string, string> = Object.fromEntries(
  (process.env.BENCH_SERVER_ENV ?? '')
    .split(/\s+/)
    .filter((pair) => pair.includes('='))
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);

function serverEnv(target: Instance, port: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return childEnv({
    DATABASE_URL: target.databaseUrl,
    REDIS_URL,
    QUEUE_BACKEND: target.transport,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    QUEUE_PREFIX: target.prefix,
    // The per-organization API limit (600/min by default) would turn this benchmark into a 429 test:
    // one organization sends every message and its poller clients read every reply.
    RATE_LIMIT_MAX: '100000000',
    SHUTDOWN_TIMEOUT_MS: '10000',
    ...SERVER_ENV_OVERRIDES,
    ...extra,
  });
}

const MESSAGES = [
  'Draft a short press statement announcing our new product launch next week',
  'Who should we pitch at TechCrunch for a story about our fintech partnership?',
  'Summarize the key talking points for the CEO interview on Friday',
  'Find the email of the business editor at Reuters',
  'What should we say if reporters ask about the rumoured office move?',
  'Write three headline options for the quarterly results announcement',
  'Who approves public statements in a crisis?',
  'Suggest a social media post for our sustainability report',
];
const messageFor = (a: number, b: number) => `${MESSAGES[(a + b) % MESSAGES.length]} (${a}.${b})`;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `data.tracking.batchId` of a queued 202 (a couple of other shapes tolerated). */
function batchIdOf(body: string): string | undefined {
  const json = parseJson(body) as { data?: { tracking?: { batchId?: unknown }; batchId?: unknown }; batchId?: unknown } | undefined;
  const id = json?.data?.tracking?.batchId ?? json?.data?.batchId ?? json?.batchId;
  return typeof id === 'string' ? id : undefined;
}

/** What a 202 promised: the wait until `estimatedCompletion` (server clock on both ends), the runs ahead, and when it was answered (performance.now()). */
interface Promised {
  estimateMs: number;
  aheadOverall: number;
  answeredAt: number;
}

function promisedOf(body: string, answeredAt: number): Promised | undefined {
  const json = parseJson(body) as
    | { data?: { immediate?: { timestamp?: unknown }; tracking?: { estimatedCompletion?: unknown; queuePosition?: { overall?: unknown } } } }
    | undefined;
  const at = Date.parse(String(json?.data?.immediate?.timestamp));
  const due = Date.parse(String(json?.data?.tracking?.estimatedCompletion));
  const ahead = json?.data?.tracking?.queuePosition?.overall;
  if (!Number.isFinite(at) || !Number.isFinite(due)) return undefined;
  return { estimateMs: due - at, aheadOverall: typeof ahead === 'number' ? ahead : Number.NaN, answeredAt };
}

/**
 * How honest the 202's `estimatedCompletion` was: for each answered message, the time until a
 * poller saw its reply minus the time the server estimated. Positive: later than promised.
 * `sendEnd` (performance.now()) splits the messages by regime: replies seen while the load was
 * still being offered (the drain the estimate measured held for the whole wait) and replies seen
 * after it stopped (the backlog drained faster than anything measured before the estimate).
 */
function estimateAccuracy(promised: ReadonlyMap<string, Promised>, watcher: ReplyWatcher, sendEnd: number): Record<string, unknown> {
  const signed: number[] = [];
  const absolute: number[] = [];
  const ratios: number[] = [];
  const ahead: number[] = [];
  const byRegime = { duringLoad: { ratios: [] as number[], absolute: [] as number[] }, afterLoad: { ratios: [] as number[], absolute: [] as number[] } };
  let within25 = 0;
  for (const [id, p] of promised) {
    const actual = watcher.lagOf(id);
    if (actual === undefined) continue;
    const error = actual - p.estimateMs;
    signed.push(error);
    absolute.push(Math.abs(error));
    const regime = p.answeredAt + actual <= sendEnd ? byRegime.duringLoad : byRegime.afterLoad;
    regime.absolute.push(Math.abs(error));
    if (p.estimateMs > 0) {
      ratios.push(actual / p.estimateMs);
      regime.ratios.push(actual / p.estimateMs);
    }
    if (Number.isFinite(p.aheadOverall)) ahead.push(p.aheadOverall);
    if (Math.abs(error) <= Math.max(250, 0.25 * actual)) within25++;
  }
  const regimeSummary = (r: { ratios: number[]; absolute: number[] }) => ({
    messages: r.absolute.length,
    actualOverEstimate: { ...summarize(r.ratios), p10: round(percentile([...r.ratios].sort((a, b) => a - b), 10), 3) },
    absoluteErrorMs: summarize(r.absolute),
  });
  return {
    messages: signed.length,
    errorMs: summarize(signed),
    absoluteErrorMs: summarize(absolute),
    actualOverEstimate: { ...summarize(ratios), p10: round(percentile([...ratios].sort((a, b) => a - b), 10), 3) },
    // Within 25 % of the actual wait, or 250 ms (a poller sees a reply up to its poll interval late).
    shareWithin25Percent: signed.length ? round(within25 / signed.length, 3) : null,
    aheadAtAccept: summarize(ahead),
    replySeenDuringLoad: regimeSummary(byRegime.duringLoad),
    replySeenAfterLoad: regimeSummary(byRegime.afterLoad),
  };
}

interface BatchDoc {
  batchId: string;
  status: string;
  completedJobs: number;
  totalJobs: number;
  createdAt: string;
  finishedAt: string | null;
  results?: Record<string, unknown>;
  errors?: unknown[];
}

function batchDocOf(body: string): BatchDoc | undefined {
  const json = parseJson(body) as (BatchDoc & { data?: BatchDoc }) | undefined;
  const doc = json && typeof json.status !== 'string' && json.data ? json.data : json;
  return doc && typeof doc.status === 'string' ? doc : undefined;
}

// --- state shared with cleanup ----------------------------------------------------------------------

const sampler = new MemorySampler(200);
const memory: Record<string, TreeMemory | undefined> = {};
let fake: FakeOpenAiServer | undefined;
/** Pools to the bench databases, by name (for drain checks and findings). */
const pools = new Map<string, pg.Pool>();
const createdDatabases: string[] = [];
const problems: string[] = [];
const harnessErrors: string[] = [];

// --- the real server ------------------------------------------------------------------------------

interface Server {
  label: string;
  child: Child;
  port: number;
  target: Instance;
}

/**
 * `role`: `start` (HTTP and workers in one process), `api` (HTTP only: the accept path measured on
 * its own, as the floor server is), or `worker` (no HTTP; ready once its queue system is).
 */
async function startServer(label: string, target: Instance, extraEnv: Record<string, string> = {}, role: 'start' | 'api' | 'worker' = 'start'): Promise<Server> {
  const port = await freePort();
  // BENCH_CPU_PROF=1 writes V8 CPU profiles of each server (one per thread) to bench/results/prof/ when it stops.
  const prof = process.env.BENCH_CPU_PROF === '1' ? ['--cpu-prof', `--cpu-prof-dir=${RESULTS}prof/${RID}-${label}`] : [];
  const child = spawnChild(label, process.execPath, [...prof, 'bin/honeyjar.js', role], {
    cwd: ROOT,
    env: serverEnv(target, port, role === 'worker' ? { LOG_LEVEL: 'info', ...extraEnv } : extraEnv),
    logFile: `${RESULTS}${label}.log`,
  });
  if (role === 'worker') {
    const deadline = performance.now() + S.readyTimeoutMs;
    while (!child.tail().includes('Queue system ready')) {
      if (child.hasExited() || performance.now() > deadline) throw new Error(`${label} did not become ready:\n${child.tail().slice(-3000)}`);
      await sleep(100);
    }
    sampler.watch(label, child.pid);
    return { label, child, port, target };
  }
  const agent = createAgent(1);
  const deadline = performance.now() + S.readyTimeoutMs;
  try {
    while (true) {
      if (child.hasExited()) throw new Error(`${label} exited before it was ready:\n${child.tail().slice(-3000)}`);
      // A fatal log line means it will not become ready, even if the process lingers.
      if (child.tail().includes('"level":60')) throw new Error(`${label} logged a fatal error while starting:\n${child.tail().slice(-3000)}`);
      if (performance.now() > deadline) throw new Error(`${label} not healthy after ${S.readyTimeoutMs} ms:\n${child.tail().slice(-3000)}`);
      const res = await httpRequest(agent, port, { method: 'GET', path: '/api/v1/chat/system/health', timeoutMs: 2_000 }).catch(() => undefined);
      if (res?.status === 200) break;
      await sleep(100);
    }
  } finally {
    agent.destroy();
  }
  sampler.watch(label, child.pid);
  return { label, child, port, target };
}

async function stopServer(server: Server): Promise<void> {
  memory[server.label] = sampler.finish(server.label);
  await stopChild(server.child, 15_000);
}

/** Warnings and errors the server logged (pino JSON lines, level ≥ 40), with a few samples. */
function logFindings(label: string): { warn: number; error: number; samples: string[] } {
  let text = '';
  try {
    text = readFileSync(`${RESULTS}${label}.log`, 'utf8');
  } catch {
    return { warn: 0, error: 0, samples: [] };
  }
  let warn = 0;
  let error = 0;
  const samples: string[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    const level = Number(/"level":(\d+)/.exec(line)?.[1] ?? 0);
    if (level >= 50) error++;
    else if (level >= 40) warn++;
    else continue;
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 200);
    if (!seen.has(msg) && samples.length < 8) {
      seen.add(msg);
      samples.push(line.slice(0, 600));
    }
  }
  return { warn, error, samples };
}

interface Tenant {
  orgId: string;
  token: string;
}

async function bootstrapTenant(target: Instance, org = 'Bench', email = 'bench@example.com'): Promise<Tenant> {
  const stdout = await runToCompletion('bootstrap', process.execPath, ['bin/honeyjar.js', 'bootstrap', '--org', org, '--email', email], {
    cwd: ROOT,
    env: serverEnv(target, 0),
    logFile: `${RESULTS}bootstrap${target === E2E ? '-e2e' : ''}.log`,
    timeoutMs: 60_000,
  });
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  const parsed = line ? (parseJson(line) as Partial<Tenant> | undefined) : undefined;
  if (!parsed?.orgId || !parsed.token) throw new Error(`bootstrap printed no tenant: ${stdout.slice(0, 500)}`);
  return { orgId: parsed.orgId, token: parsed.token };
}

function authHeaders(tenant: Tenant): Record<string, string> {
  return { authorization: `Bearer ${tenant.token}`, 'x-organization-id': tenant.orgId };
}

async function createThreads(server: Server, tenant: Tenant, count: number, title: string): Promise<string[]> {
  const agent = createAgent(10);
  const ids: string[] = new Array(count);
  try {
    await forEachLimited([...Array(count).keys()], 10, async (i) => {
      const res = await httpRequest(agent, server.port, {
        method: 'POST',
        path: '/api/v1/chat/threads',
        headers: authHeaders(tenant),
        body: JSON.stringify({ title: `${title} ${i}` }),
      });
      const id = (parseJson(res.body) as { id?: string } | undefined)?.id;
      if (res.status !== 201 || !id) throw new Error(`create thread answered ${res.status}: ${res.body.slice(0, 300)}`);
      ids[i] = id;
    });
  } finally {
    agent.destroy();
  }
  return ids;
}

function postQueued(agent: ReturnType<typeof createAgent>, server: Server, tenant: Tenant, threadId: string, content: string): Promise<HttpResponse> {
  return httpRequest(agent, server.port, {
    method: 'POST',
    path: `/api/v1/chat/threads/${threadId}/messages/queued`,
    headers: authHeaders(tenant),
    body: JSON.stringify({ content }),
  });
}

async function getBatch(agent: ReturnType<typeof createAgent>, server: Server, tenant: Tenant, batchId: string): Promise<BatchDoc | undefined> {
  const res = await httpRequest(agent, server.port, { method: 'GET', path: `/api/v1/chat/batch/${batchId}/results`, headers: authHeaders(tenant) });
  return res.status === 200 ? batchDocOf(res.body) : undefined;
}

interface PgCounters {
  commits: number;
  inserted: number;
  updated: number;
  fetched: number;
}

/** This database's counters from pg_stat_database (flushed by PostgreSQL about once a second). */
async function pgCounters(pool: pg.Pool | undefined): Promise<PgCounters | undefined> {
  if (!pool) return undefined;
  try {
    const { rows } = await pool.query<{ commits: string; inserted: string; updated: string; fetched: string }>(
      'select xact_commit as commits, tup_inserted as inserted, tup_updated as updated, tup_fetched as fetched from pg_stat_database where datname = current_database()',
    );
    const row = rows[0];
    return row ? { commits: Number(row.commits), inserted: Number(row.inserted), updated: Number(row.updated), fetched: Number(row.fetched) } : undefined;
  } catch {
    return undefined;
  }
}

/** Counter deltas per message (roughly: includes whatever else ran in the window). */
function perMessage(before: PgCounters | undefined, after: PgCounters | undefined, messages: number): Record<string, number> | undefined {
  if (!before || !after || messages <= 0) return undefined;
  return {
    commits: round((after.commits - before.commits) / messages, 1),
    rowsInserted: round((after.inserted - before.inserted) / messages, 1),
    rowsUpdated: round((after.updated - before.updated) / messages, 1),
    rowsFetched: round((after.fetched - before.fetched) / messages, 1),
  };
}

async function unfinishedRuns(pool: pg.Pool | undefined): Promise<number | undefined> {
  if (!pool) return undefined;
  try {
    return Number((await pool.query<{ n: number }>('select count(*)::int as n from runs where finished_at is null')).rows[0]?.n ?? 0);
  } catch {
    return undefined;
  }
}

/** Status of the given runs as stored: how many finished, completed every stage, failed; the last finish. */
async function acceptedInDatabase(pool: pg.Pool | undefined, ids: string[]) {
  if (!pool || ids.length === 0) return undefined;
  try {
    const { rows } = await pool.query<{ status: string; n: number; all_stages: number; unfinished: number; last_ms: number | null }>(
      `select r.status::text as status, count(*)::int as n,
              count(*) filter (where r.status = 'completed' and c.done >= $2 and c.done = c.total)::int as all_stages,
              count(*) filter (where r.finished_at is null)::int as unfinished,
              (extract(epoch from max(r.finished_at)) * 1000)::float8 as last_ms
         from runs r
         cross join lateral (select count(*) filter (where s.status = 'completed') as done, count(*) as total from run_steps s where s.run_id = r.id) c
        where r.id = any($1::uuid[])
        group by r.status`,
      [ids, STAGES],
    );
    const byStatus: Record<string, number> = {};
    let completedAllStages = 0;
    let unfinished = ids.length;
    let lastFinishedMs: number | undefined;
    let found = 0;
    for (const row of rows) {
      byStatus[row.status] = row.n;
      completedAllStages += row.all_stages;
      found += row.n;
      if (row.last_ms) lastFinishedMs = Math.max(lastFinishedMs ?? 0, row.last_ms);
    }
    unfinished = rows.reduce((a, r) => a + r.unfinished, 0) + (ids.length - found);
    return { byStatus, completedAllStages, failed: byStatus.failed ?? 0, unfinished, lastFinishedMs };
  } catch (error) {
    problems.push(`sustained: could not read the runs from the database: ${(error as Error).message}`);
    return undefined;
  }
}

async function runsFinishedBetween(pool: pg.Pool | undefined, fromEpochMs: number, toEpochMs: number): Promise<number | undefined> {
  if (!pool) return undefined;
  try {
    const { rows } = await pool.query<{ n: number }>(
      'select count(*)::int as n from runs where finished_at >= to_timestamp($1::float8 / 1000) and finished_at <= to_timestamp($2::float8 / 1000)',
      [fromEpochMs, toEpochMs],
    );
    return rows[0]?.n ?? 0;
  } catch {
    return undefined;
  }
}

/**
 * Where a run's time goes, from the stored timestamps (p50 over the database's runs, ms from the
 * run's createdAt): when each stage started and finished, and how long after the last stage the run
 * was marked finished. Gaps between one stage's finish and the next one's start are queue hops.
 */
async function stageTimeline(pool: pg.Pool | undefined, orgId?: string): Promise<unknown> {
  if (!pool) return undefined;
  // One organization's runs only, when given (the fairness scenario's steady sender).
  const org = orgId ? 'and r.org_id = $1' : '';
  const values = orgId ? [orgId] : [];
  try {
    const stages = await pool.query(
      `select s.stage,
              round(percentile_cont(0.5) within group (order by extract(epoch from s.started_at - r.created_at) * 1000)::numeric, 1) as started_p50,
              round(percentile_cont(0.5) within group (order by extract(epoch from s.finished_at - s.started_at) * 1000)::numeric, 1) as ran_p50,
              round(percentile_cont(0.5) within group (order by extract(epoch from s.finished_at - r.created_at) * 1000)::numeric, 1) as finished_p50,
              round(max(extract(epoch from s.finished_at - r.created_at) * 1000)::numeric, 1) as finished_max,
              max(s.attempts)::int as max_attempts
         from run_steps s join runs r on r.id = s.run_id
        where r.finished_at is not null ${org}
        group by s.stage order by finished_p50`,
      values,
    );
    const tail = await pool.query(
      `select round(percentile_cont(0.5) within group (order by extract(epoch from r.finished_at - l.last) * 1000)::numeric, 1) as run_marked_after_last_stage_p50,
              round(percentile_cont(0.5) within group (order by extract(epoch from r.finished_at - r.created_at) * 1000)::numeric, 1) as run_total_p50
         from runs r cross join lateral (select max(finished_at) as last from run_steps s where s.run_id = r.id) l
        where r.finished_at is not null ${org}`,
      values,
    );
    return { stages: stages.rows, run: tail.rows[0] };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

async function databaseFindings(pool: pg.Pool): Promise<unknown> {
  try {
    const runs = await pool.query('select source, driver, status, count(*)::int as n from runs group by 1, 2, 3 order by 1, 2, 3');
    const steps = await pool.query(
      "select stage, status, count(*)::int as n from run_steps where status <> 'completed' group by 1, 2 order by 1, 2",
    );
    const errors = await pool.query(
      "select stage, error->>'code' as code, left(error->>'message', 300) as message, count(*)::int as n from run_steps where status = 'failed' group by 1, 2, 3 order by n desc limit 10",
    );
    const runErrors = await pool.query(
      "select error->>'code' as code, left(error->>'message', 300) as message, count(*)::int as n from runs where status = 'failed' group by 1, 2 order by n desc limit 10",
    );
    // Which tables the work read: a table read far more than it holds points at a missing index or a scan.
    const tables = await pool.query(
      `select relname as table, n_live_tup::int as rows, seq_scan::int, seq_tup_read::bigint, idx_scan::bigint, idx_tup_fetch::bigint,
              n_tup_ins::bigint as inserted, n_tup_upd::bigint as updated, n_tup_hot_upd::bigint as hot_updated
         from pg_stat_user_tables order by coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) desc limit 10`,
    );
    return { runs: runs.rows, stepsNotCompleted: steps.rows, failedStepErrors: errors.rows, failedRunErrors: runErrors.rows, tables: tables.rows };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

// --- scenarios ------------------------------------------------------------------------------------

async function scenarioFloor(): Promise<Record<string, unknown>> {
  const port = await freePort();
  const child = spawnChild('floor-server', process.execPath, ['--import', 'tsx', 'bench/floor-server.ts'], {
    cwd: ROOT,
    env: childEnv({ DATABASE_URL: MAIN.databaseUrl, REDIS_URL, PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: FLOOR_PREFIX }),
    logFile: `${RESULTS}floor-server.log`,
    stdinPipe: true,
  });
  const probe = createAgent(1);
  const deadline = performance.now() + S.readyTimeoutMs;
  try {
    while (true) {
      if (child.hasExited()) throw new Error(`floor server exited:\n${child.tail().slice(-3000)}`);
      if (performance.now() > deadline) throw new Error(`floor server not ready:\n${child.tail().slice(-3000)}`);
      const res = await httpRequest(probe, port, { method: 'GET', path: '/health', timeoutMs: 2_000 }).catch(() => undefined);
      if (res?.status === 200) break;
      await sleep(100);
    }
  } finally {
    probe.destroy();
  }
  sampler.watch('floor-server', child.pid);
  const agent = createAgent(S.connections);
  const cpu0 = sampler.cpuSeconds('floor-server');
  const client0 = process.cpuUsage();
  try {
    const result = await closedLoop({
      connections: S.connections,
      warmupMs: S.warmupMs,
      measureMs: S.measureMs,
      expectedStatus: 202,
      send: (worker, seq) =>
        httpRequest(agent, port, { method: 'POST', path: '/floor', body: JSON.stringify({ content: messageFor(worker, seq) }) }),
    });
    const serverCpu = sampler.cpuSeconds('floor-server') - cpu0;
    const clientCpu = process.cpuUsage(client0);
    const rows = pools.get(MAIN.dbName) ? Number((await pools.get(MAIN.dbName)!.query<{ n: number }>('select count(*)::int as n from bench_floor')).rows[0]?.n ?? 0) : undefined;
    return {
      reqPerSec: round(result.reqPerSec, 1),
      completed: result.completed,
      errors: result.measured.errors + result.warmup.errors + result.tail.errors,
      latencyMs: summarize(result.latencies),
      outcomes: { warmup: result.warmup.toJSON(), measured: result.measured.toJSON(), tail: result.tail.toJSON() },
      serverCpuSeconds: round(serverCpu, 2),
      loadgenCpuSeconds: round((clientCpu.user + clientCpu.system) / 1e6, 2),
      rowsInserted: rows,
    };
  } finally {
    agent.destroy();
    memory['floor-server'] = sampler.finish('floor-server');
    await stopChild(child);
  }
}

async function scenarioQueued(server: Server, tenant: Tenant, threads: string[]): Promise<Record<string, unknown>> {
  const agent = createAgent(S.connections);
  const cpu0 = sampler.cpuSeconds(server.label);
  const client0 = process.cpuUsage();
  let missingBatchId = 0;
  let accepted = 0;
  try {
    const result = await closedLoop({
      connections: S.connections,
      warmupMs: S.warmupMs,
      measureMs: S.measureMs,
      expectedStatus: 202,
      send: (worker, seq) => postQueued(agent, server, tenant, threads[worker % threads.length]!, messageFor(worker, seq)),
      onGood: (res) => {
        accepted++;
        if (!batchIdOf(res.body)) missingBatchId++;
      },
    });
    const serverCpu = sampler.cpuSeconds(server.label) - cpu0;
    const clientCpu = process.cpuUsage(client0);
    if (missingBatchId) problems.push(`queued: ${missingBatchId} of ${accepted} 202 responses had no data.tracking.batchId`);
    return {
      reqPerSec: round(result.reqPerSec, 1),
      completed: result.completed,
      accepted,
      missingBatchId,
      errors: result.measured.errors + result.warmup.errors + result.tail.errors,
      latencyMs: summarize(result.latencies),
      outcomes: { warmup: result.warmup.toJSON(), measured: result.measured.toJSON(), tail: result.tail.toJSON() },
      serverCpuSeconds: round(serverCpu, 2),
      loadgenCpuSeconds: round((clientCpu.user + clientCpu.system) / 1e6, 2),
    };
  } finally {
    agent.destroy();
  }
}

async function scenarioAck(server: Server, tenant: Tenant, threads: string[]): Promise<Record<string, unknown>> {
  const agent = createAgent(S.ackUsers * 2);
  const cpu0 = sampler.cpuSeconds(server.label);
  const schedule = poissonSchedule({ users: S.ackUsers, ratePerUser: S.ackRatePerUser, durationMs: S.ackDurationMs, seed: S.seed });
  try {
    const result = await openLoop({
      schedule,
      durationMs: S.ackDurationMs,
      expectedStatus: 202,
      send: (user, seq) => postQueued(agent, server, tenant, threads[user % threads.length]!, messageFor(user, 1_000 + seq)),
    });
    return {
      arrivals: 'poisson',
      seed: S.seed,
      sent: result.sent,
      ok: result.outcomes.ok,
      errors: result.outcomes.errors,
      outcomes: result.outcomes.toJSON(),
      latencyFromScheduleMs: summarize(result.latenciesFromSchedule),
      latencyFromSendMs: summarize(result.latencies),
      harnessFireLagMs: summarize(result.fireLag),
      serverCpuSeconds: round(sampler.cpuSeconds(server.label) - cpu0, 2),
      offeredRatePerSec: round(result.sent / (result.durationMs / 1000), 1),
      // How clumped the offered load was: most messages scheduled inside any 10 ms and any 100 ms.
      peakArrivalsIn10Ms: peakInWindow(schedule, 10),
      peakArrivalsIn100Ms: peakInWindow(schedule, 100),
    };
  } finally {
    agent.destroy();
  }
}

/** The worker processes serving the current throughput scenario (set by withApiAndWorkers). */
let activeWorkers: Server[] = [];

/** Redis's own counters: commands by name (INFO commandstats) and the CPU seconds it used (INFO cpu). */
async function redisCounters(): Promise<{ calls: Map<string, number>; cpuSeconds: number } | undefined> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const stats = await redis.info('commandstats');
    const cpu = await redis.info('cpu');
    const calls = new Map<string, number>();
    for (const match of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
    return { calls, cpuSeconds: field('used_cpu_user') + field('used_cpu_sys') };
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

/**
 * What a scenario's messages cost, load-independent: CPU ms per message of the API, of the worker
 * processes, of the database's PostgreSQL backends and of Redis, PostgreSQL transactions per
 * message, and Redis commands per message (the busiest named). Redis's figures are its whole
 * server's: exact with BENCH_REDIS_URL pointing at a Redis of the bench's own, else they include
 * whatever else uses it.
 */
async function startCostMeter(server: Server) {
  const workers = activeWorkers.map((w) => w.label);
  const cpu = () => ({
    api: sampler.cpuSeconds(server.label),
    workers: workers.reduce((sum, label) => sum + sampler.cpuSeconds(label), 0),
    postgres: postgresCpuSeconds(server.target.dbName),
  });
  const cpu0 = cpu();
  const redis0 = await redisCounters();
  return async (messages: number) => {
    const cpu1 = cpu();
    const redis1 = await redisCounters();
    const perMessageMs = (a: number, b: number) => (messages > 0 ? round(((b - a) * 1000) / messages, 2) : null);
    let redisFigures: Record<string, unknown> | undefined;
    if (redis0 && redis1 && messages > 0) {
      const deltas = [...redis1.calls].map(([name, n]) => [name, n - (redis0.calls.get(name) ?? 0)] as const).filter(([, n]) => n > 0);
      deltas.sort((a, b) => b[1] - a[1]);
      redisFigures = {
        commandsPerMessage: round(deltas.reduce((sum, [, n]) => sum + n, 0) / messages, 1),
        byCommandPerMessage: Object.fromEntries(deltas.slice(0, 12).map(([name, n]) => [name, round(n / messages, 2)])),
        cpuMsPerMessage: perMessageMs(redis0.cpuSeconds, redis1.cpuSeconds),
        ownServer: !!process.env.BENCH_REDIS_URL,
      };
    }
    return {
      messages,
      cpuMsPerMessage: {
        api: perMessageMs(cpu0.api, cpu1.api),
        workers: perMessageMs(cpu0.workers, cpu1.workers),
        postgres: perMessageMs(cpu0.postgres, cpu1.postgres),
        redis: redisFigures?.cpuMsPerMessage ?? null,
      },
      redis: redisFigures,
    };
  };
}

/** BENCH_WORKERS worker processes (1 by default) for scenarios 4 and 4b, each with all five workers. */
async function startWorkers(label: string, target: Instance): Promise<Server[]> {
  const count = Math.max(1, Number(process.env.BENCH_WORKERS || 1));
  const workers: Server[] = [];
  for (let i = 0; i < count; i++) workers.push(await startServer(i === 0 ? label : `${label}-${i + 1}`, target, {}, 'worker'));
  return workers;
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return round((used.user + used.system) / 1e6, 2);
}

function createWatcher(server: Server, tenant: Tenant, threads: string[], agent: ReturnType<typeof createAgent>): ReplyWatcher {
  return new ReplyWatcher({ agent, port: server.port, headers: authHeaders(tenant), threadIds: threads, pollers: S.pollers, minIntervalMs: S.pollIntervalMs });
}

/** Problems an audit over HTTP shows: a message without its reply, or with several. */
function auditProblems(phase: string, audit: ReplyAudit): void {
  if (audit.withoutReply) problems.push(`${phase}: ${audit.withoutReply} of ${audit.accepted} accepted messages have no reply in their thread (read over HTTP)`);
  if (audit.withSeveralReplies) problems.push(`${phase}: ${audit.withSeveralReplies} accepted messages have more than one reply (read over HTTP)`);
  if (audit.unexpectedReplies) problems.push(`${phase}: ${audit.unexpectedReplies} replies answer no message this client had accepted`);
  if (audit.userMessageAnomalies) problems.push(`${phase}: ${audit.userMessageAnomalies} accepted messages are missing from their thread or listed twice`);
  if (audit.outcomes.errors) problems.push(`${phase}: ${audit.outcomes.errors} thread reads failed during the audit (${JSON.stringify(audit.outcomes.byStatus)})`);
}

/**
 * Closed-loop load (50 connections as fast as they are answered) while poller clients read the
 * threads over HTTP. The throughput is what a client sees: replies first seen per second between
 * the end of the warm-up and the end of the sends (the pipeline is loaded the whole time, as the
 * accept rate exceeds it). Then the rest drains, every thread is read again from its start, and
 * each accepted message must have exactly one reply; the database is asked the same once, as a
 * cross-check that the replies went through all five stages.
 */
async function scenarioSustained(server: Server, tenant: Tenant, threads: string[]): Promise<Record<string, unknown>> {
  const agent = createAgent(S.sustainedConnections);
  const pollAgent = createAgent(Math.max(S.pollers, S.auditConcurrency));
  const watcher = createWatcher(server, tenant, threads, pollAgent);
  const accepted: string[] = [];
  const promised = new Map<string, Promised>();
  let sent = 0;
  let missingBatchId = 0;
  const cpu0 = sampler.cpuSeconds(server.label);
  const pool = pools.get(server.target.dbName);
  const pg0 = await pgCounters(pool);
  const cost = await startCostMeter(server);
  const backlog0 = await unfinishedRuns(pool);
  const firstSendEpoch = Date.now();
  const client0 = process.cpuUsage();
  watcher.start();
  const t0 = performance.now();
  try {
    const result = await closedLoop({
      connections: S.sustainedConnections,
      warmupMs: 0,
      measureMs: S.sustainedSendMs,
      expectedStatus: 202,
      stopWhen: () => sent >= S.sustainedMaxMessages,
      send: (worker, seq) => {
        sent++;
        return postQueued(agent, server, tenant, threads[worker % threads.length]!, messageFor(worker, 2_000 + seq));
      },
      onGood: (res, _startedAt, endedAt, worker) => {
        const id = batchIdOf(res.body);
        if (!id) {
          missingBatchId++;
          return;
        }
        accepted.push(id);
        const promise = promisedOf(res.body, endedAt);
        if (promise) promised.set(id, promise);
        watcher.expect(id, threads[worker % threads.length]!, endedAt);
      },
    });
    const sendEnd = performance.now();
    const sendMs = sendEnd - t0;
    const windowFrom = t0 + S.sustainedWarmupMs;
    const repliedBySendEnd = watcher.repliedCount;
    const pollRequestsBySendEnd = watcher.requests;
    log(`sustained: ${accepted.length} accepted in ${round(sendMs, 0)} ms, ${repliedBySendEnd} replies seen; waiting for the rest`);

    const allReplied = await watcher.waitForAll(t0 + S.sustainedDeadlineMs, S.drainStallMs);
    const drainEnd = performance.now();
    await watcher.stop();
    const waitEndEpoch = Date.now();
    const times = watcher.replyTimes();
    const audit = await watcher.audit(S.auditConcurrency);
    auditProblems('sustained', audit);

    const fromDb = await acceptedInDatabase(pool, accepted);
    const finishedInWindow = await runsFinishedBetween(pool, firstSendEpoch, waitEndEpoch);
    const serverCpu = sampler.cpuSeconds(server.label) - cpu0;
    // Every accepted message is through by now (or the drain gave up): the cost of the whole load.
    const costs = await cost(accepted.length);
    await sleep(1_100); // let PostgreSQL flush its statistics
    const pg1 = await pgCounters(pool);

    // Compared only once everything is answered: otherwise runs finishing between the two reads differ.
    if (allReplied && fromDb && fromDb.completedAllStages !== audit.withOneReply) {
      problems.push(`sustained: ${audit.withOneReply} accepted messages have one reply over HTTP, the database has ${fromDb.completedAllStages} runs completed through all ${STAGES} stages`);
    }
    if (!allReplied) problems.push(`sustained: ${accepted.length - watcher.repliedCount} of ${accepted.length} replies not seen when the wait ended ${round((drainEnd - t0) / 1000, 0)} s after the first send (bound ${S.sustainedDeadlineMs / 1000} s, or ${S.drainStallMs / 1000} s without a new reply)`);
    if (fromDb?.failed) problems.push(`sustained: ${fromDb.failed} of ${accepted.length} runs ended failed`);
    if (missingBatchId) problems.push(`sustained: ${missingBatchId} 202 responses had no batchId`);
    const lastReply = times.length ? Math.max(...times) : Number.NaN;
    const pollSeconds = (drainEnd - t0) / 1000;
    return {
      sent,
      accepted: accepted.length,
      sendErrors: result.measured.errors + result.tail.errors,
      sendOutcomes: result.measured.toJSON(),
      sendWindowMs: round(sendMs, 0),
      acceptRatePerSec: round(accepted.length / (sendMs / 1000), 1),
      backlogAtStart: backlog0,
      measurementWindowMs: round(sendEnd - windowFrom, 0),
      // Replies first seen by the pollers inside the window, per second: the figure with the target.
      repliesPerSecInWindow: round(ratePerSecond(times, windowFrom, sendEnd), 1),
      repliesSeenBySendEnd: repliedBySendEnd,
      // After the sends: the backlog drained with no new load.
      repliesPerSecDraining: round(ratePerSecond(times, sendEnd, drainEnd + 1), 1),
      repliesPerSecFirstSendToLastReply: round(times.length / ((lastReply - t0) / 1000), 1),
      allReplied,
      replyAudit: audit,
      duplicatesSeenWhilePolling: watcher.duplicatesSeen,
      pollers: S.pollers,
      pollIntervalMs: S.pollIntervalMs,
      pollRequests: watcher.requests,
      pollRequestsPerSec: round(watcher.requests / pollSeconds, 1),
      pollRequestsPerSecDuringSends: round(pollRequestsBySendEnd / (sendMs / 1000), 1),
      pollOutcomes: watcher.outcomes.toJSON(),
      acceptToReplySeenMs: summarize(watcher.lags()),
      estimatedCompletion: estimateAccuracy(promised, watcher, sendEnd),
      database: fromDb,
      // Every run the pipeline finished between the first send and the end of the wait (earlier phases' backlog included).
      pipelineFinishedPerSec: finishedInWindow === undefined ? null : round(finishedInWindow / ((waitEndEpoch - firstSendEpoch) / 1000), 1),
      serverCpuSeconds: round(serverCpu, 2),
      serverCpuMsPerMessage: accepted.length ? round((serverCpu * 1000) / accepted.length, 2) : null,
      // The load generator and the pollers share the machine's cores with the servers.
      harnessCpuSeconds: cpuSecondsSince(client0),
      // Includes the pollers' reads and any backlog of earlier phases processed in the window.
      postgresPerAcceptedMessage: perMessage(pg0, pg1, accepted.length),
      costPerMessage: costs,
    };
  } finally {
    await watcher.stop();
    agent.destroy();
    pollAgent.destroy();
  }
}

/**
 * Sustained at a set pace: messages offered as Poisson arrivals at BENCH_PACED_RATE per second
 * (100 independent users, one thread each) for 30 s, the API and a worker process on a fresh
 * database, as in scenario 4, with the same poller clients. It keeps up when every message got
 * exactly one reply and a client saw it within a second at p99; replies/s seen after a warm-up.
 */
async function scenarioPaced(server: Server, tenant: Tenant, threads: string[]): Promise<Record<string, unknown>> {
  const agent = createAgent(S.pacedUsers * 2);
  const pollAgent = createAgent(Math.max(S.pollers, S.auditConcurrency));
  const watcher = createWatcher(server, tenant, threads, pollAgent);
  const pool = pools.get(server.target.dbName);
  const cpu0 = sampler.cpuSeconds(server.label);
  const cost = await startCostMeter(server);
  const schedule = poissonSchedule({ users: S.pacedUsers, ratePerUser: S.pacedRatePerSec / S.pacedUsers, durationMs: S.pacedSendMs, seed: S.seed + 1 });
  let missingBatchId = 0;
  const promised = new Map<string, Promised>();
  const client0 = process.cpuUsage();
  watcher.start();
  const t0 = performance.now();
  try {
    const sent = await openLoop({
      schedule,
      durationMs: S.pacedSendMs,
      expectedStatus: 202,
      send: (user, seq) => postQueued(agent, server, tenant, threads[user % threads.length]!, messageFor(user, 4_000 + seq)),
      onGood: (res, user, _seq, answeredAt) => {
        const id = batchIdOf(res.body);
        if (!id) {
          missingBatchId++;
          return;
        }
        const promise = promisedOf(res.body, answeredAt);
        if (promise) promised.set(id, promise);
        watcher.expect(id, threads[user % threads.length]!, answeredAt);
      },
    });
    const sendEnd = performance.now();
    const allReplied = await watcher.waitForAll(sendEnd + S.pacedDrainMs, S.drainStallMs);
    await watcher.stop();
    const costs = await cost(watcher.acceptedCount);
    const times = watcher.replyTimes();
    const lags = summarize(watcher.lags());
    const audit = await watcher.audit(S.auditConcurrency);
    auditProblems('paced', audit);
    if (!pool) throw new Error('no database pool');
    const { rows } = await pool.query(
      `select count(*)::int as runs,
              count(*) filter (where r.status = 'completed' and c.done >= $1 and c.done = c.total)::int as completed_all_stages,
              count(*) filter (where r.finished_at is null)::int as unfinished,
              count(*) filter (where r.status = 'failed')::int as failed,
              percentile_cont(array[0.5, 0.9, 0.99]) within group (order by extract(epoch from r.finished_at - r.created_at) * 1000) as lag_ms,
              max(extract(epoch from r.finished_at - r.created_at) * 1000)::float8 as lag_max_ms
         from runs r
        cross join lateral (select count(*) filter (where v = 'completed') as done, count(*) as total from jsonb_each_text(r.step_states) as e(k, v)) c`,
      [STAGES],
    );
    const row = rows[0];
    const [lagP50, lagP90, lagP99] = (row.lag_ms as number[] | null) ?? [];
    if (!allReplied) problems.push(`paced: ${watcher.acceptedCount - watcher.repliedCount} of ${watcher.acceptedCount} replies not seen when the wait ended (bound ${S.pacedDrainMs / 1000} s after the last send, or ${S.drainStallMs / 1000} s without a new reply)`);
    if (row.failed) problems.push(`paced: ${row.failed} runs failed`);
    if (allReplied && row.completed_all_stages !== audit.withOneReply) problems.push(`paced: ${audit.withOneReply} messages have one reply over HTTP, the database has ${row.completed_all_stages} runs completed through all ${STAGES} stages`);
    if (missingBatchId) problems.push(`paced: ${missingBatchId} 202 responses had no batchId`);
    const keptUp = allReplied && audit.withOneReply === audit.accepted && audit.accepted === sent.sent && audit.unexpectedReplies === 0 && lags.p99 <= TARGETS.pacedLagP99Ms;
    return {
      arrivals: 'poisson',
      seed: S.seed + 1,
      offeredRatePerSec: round(sent.sent / (S.pacedSendMs / 1000), 1),
      targetRatePerSec: S.pacedRatePerSec,
      sent: sent.sent,
      accepted: sent.outcomes.ok,
      sendErrors: sent.outcomes.errors,
      outcomes: sent.outcomes.toJSON(),
      ackFromScheduleMs: summarize(sent.latenciesFromSchedule),
      harnessFireLagMs: summarize(sent.fireLag),
      acceptRatePerSec: round(sent.outcomes.ok / ((sendEnd - t0) / 1000), 1),
      measurementWindowMs: round(sendEnd - (t0 + S.pacedWarmupMs), 0),
      repliesPerSecInWindow: round(ratePerSecond(times, t0 + S.pacedWarmupMs, sendEnd), 1),
      allReplied,
      keptUp,
      acceptToReplySeenMs: lags,
      estimatedCompletion: estimateAccuracy(promised, watcher, sendEnd),
      replyAudit: audit,
      duplicatesSeenWhilePolling: watcher.duplicatesSeen,
      pollRequests: watcher.requests,
      pollOutcomes: watcher.outcomes.toJSON(),
      database: {
        runs: row.runs,
        completedAllStages: row.completed_all_stages,
        unfinished: row.unfinished,
        failed: row.failed,
        createdToFinishedMs: { p50: round(Number(lagP50), 1), p90: round(Number(lagP90), 1), p99: round(Number(lagP99), 1), max: round(Number(row.lag_max_ms), 1) },
      },
      serverCpuSeconds: round(sampler.cpuSeconds(server.label) - cpu0, 2),
      harnessCpuSeconds: cpuSecondsSince(client0),
      costPerMessage: costs,
    };
  } finally {
    await watcher.stop();
    agent.destroy();
    pollAgent.destroy();
  }
}

async function scenarioEndToEnd(server: Server, tenant: Tenant, threads: string[], llm: FakeOpenAiServer): Promise<Record<string, unknown>> {
  const agent = createAgent(16);
  const rows: Array<{ ackMs: number; sendToDoneMs: number; ackToDoneMs: number; serverMs: number; status: string; provider: unknown; polls: number }> = [];
  const outcomes = new Outcomes();
  const start = performance.now();
  try {
    await Promise.all(
      Array.from({ length: S.e2eMessages }, async (_, i) => {
        const due = start + i * S.e2eIntervalMs;
        await sleep(Math.max(0, due - performance.now()));
        const t0 = performance.now();
        let res: HttpResponse;
        try {
          res = await postQueued(agent, server, tenant, threads[i % threads.length]!, messageFor(i, 3_000));
        } catch (error) {
          outcomes.record(202, error as Error);
          return;
        }
        const tAck = performance.now();
        if (!outcomes.record(202, res)) return;
        const batchId = batchIdOf(res.body);
        if (!batchId) return;
        let polls = 0;
        while (performance.now() - t0 < S.e2eDeadlineMs) {
          polls++;
          const doc = await getBatch(agent, server, tenant, batchId).catch(() => undefined);
          if (doc && TERMINAL.has(doc.status)) {
            const tDone = performance.now();
            const results = doc.results as { openai?: { provider?: unknown } } | undefined;
            rows.push({
              ackMs: tAck - t0,
              sendToDoneMs: tDone - t0,
              ackToDoneMs: tDone - tAck,
              serverMs: doc.finishedAt ? Date.parse(doc.finishedAt) - Date.parse(doc.createdAt) : Number.NaN,
              status: doc.status,
              provider: results?.openai?.provider,
              polls,
            });
            return;
          }
          await sleep(S.e2ePollMs);
        }
        rows.push({ ackMs: tAck - t0, sendToDoneMs: Number.NaN, ackToDoneMs: Number.NaN, serverMs: Number.NaN, status: 'timeout', provider: undefined, polls });
      }),
    );
  } finally {
    agent.destroy();
  }
  const done = rows.filter((r) => r.status === 'completed');
  const providers: Record<string, number> = {};
  for (const r of rows) providers[String(r.provider)] = (providers[String(r.provider)] ?? 0) + 1;
  const statuses: Record<string, number> = {};
  for (const r of rows) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const llmCalls = llm.chatRequests().length;
  const timeline = await stageTimeline(pools.get(server.target.dbName));
  if (done.length < S.e2eMessages) problems.push(`end-to-end: ${S.e2eMessages - done.length} of ${S.e2eMessages} messages did not complete (${JSON.stringify(statuses)})`);
  if (llmCalls < done.length) problems.push(`end-to-end: the fake LLM saw ${llmCalls} chat requests for ${done.length} completed messages (providers: ${JSON.stringify(providers)})`);
  return {
    messages: S.e2eMessages,
    completed: done.length,
    statuses,
    providers,
    fakeLlmChatRequests: llmCalls,
    fakeLlmMaxConcurrent: llm.maxConcurrent,
    llmLatencyMs: S.e2eLlmLatencyMs,
    sendToCompletedMs: summarize(done.map((r) => r.sendToDoneMs)),
    ackToCompletedMs: summarize(done.map((r) => r.ackToDoneMs)),
    ackMs: summarize(rows.map((r) => r.ackMs)),
    serverCreatedToFinishedMs: summarize(done.map((r) => r.serverMs).filter(Number.isFinite)),
    overheadOverLlmP50Ms: round(summarize(done.map((r) => r.sendToDoneMs)).p50 - S.e2eLlmLatencyMs, 1),
    outcomes: outcomes.toJSON(),
    pollsPerMessage: summarize(rows.map((r) => r.polls)),
    stageTimelineMs: timeline,
  };
}

/**
 * Fairness, with FAIRNESS=`mode` on a fresh database, an API and a worker process (offline LLM):
 * organization A sends S.fairFloodMessages as fast as 50 connections are answered, while
 * organization B sends one message every 200 ms (over 10 threads), each followed over HTTP until
 * its batch is completed, until A's last run has finished. B's send → completed; A's throughput is
 * its messages over the time from its first send to its last run's finish (from the database).
 */
async function scenarioFairness(mode: 'on' | 'off', target: Instance): Promise<Record<string, unknown>> {
  const pool = await createDatabase(target);
  const label = `server-fair-${mode}`;
  const env = { FAIRNESS: mode };
  const api = await startServer(label, target, env, 'api');
  const worker = await startServer(`${label}-worker`, target, env, 'worker');
  const floodAgent = createAgent(S.fairFloodConnections);
  const steadyAgent = createAgent(16);
  try {
    const a = await bootstrapTenant(target, 'Flood org', 'flood@example.com');
    const b = await bootstrapTenant(target, 'Steady org', 'steady@example.com');
    const aThreads = await createThreads(api, a, S.fairFloodConnections, 'Flood');
    const bThreads = await createThreads(api, b, 10, 'Steady');
    // -1 when the database could not be asked (asked again after the next pause).
    const unfinishedOfA = async () =>
      pool
        .query<{ n: number }>('select count(*)::int as n from runs where org_id = $1 and finished_at is null', [a.orgId])
        .then((result) => Number(result.rows[0]?.n ?? -1))
        .catch(() => -1);

    let sent = 0;
    let accepted = 0;
    let floodSendMs = Number.NaN;
    let floodOver = false;
    const steady: Array<{ sendToDoneMs: number; ackMs: number; serverMs: number; status: string; sentAtMs: number }> = [];
    const steadyOutcomes = new Outcomes();
    let reading = 0;
    const readers: Array<() => void> = [];
    const readBatch = async (batchId: string) => {
      // A slot is handed from one read to the next waiting one, so never more than fairPollReaders run.
      if (reading >= S.fairPollReaders) await new Promise<void>((resolve) => readers.push(resolve));
      else reading++;
      try {
        return await getBatch(steadyAgent, api, b, batchId).catch(() => undefined);
      } finally {
        const next = readers.shift();
        if (next) next();
        else reading--;
      }
    };
    const followOne = async (i: number, t0: number): Promise<void> => {
      const start = performance.now();
      let res: HttpResponse;
      try {
        res = await postQueued(steadyAgent, api, b, bThreads[i % bThreads.length]!, messageFor(i, 7_000));
      } catch (error) {
        steadyOutcomes.record(202, error as Error);
        return;
      }
      const ackMs = performance.now() - start;
      if (!steadyOutcomes.record(202, res)) return;
      const batchId = batchIdOf(res.body);
      if (!batchId) return;
      while (performance.now() - start < 60_000) {
        const doc = await readBatch(batchId);
        if (doc && TERMINAL.has(doc.status)) {
          const serverMs = doc.finishedAt ? Date.parse(doc.finishedAt) - Date.parse(doc.createdAt) : Number.NaN;
          steady.push({ sendToDoneMs: performance.now() - start, ackMs, serverMs, status: doc.status, sentAtMs: start - t0 });
          return;
        }
        await sleep(S.fairPollMs);
      }
      steady.push({ sendToDoneMs: Number.NaN, ackMs, serverMs: Number.NaN, status: 'timeout', sentAtMs: start - t0 });
    };

    const firstSendEpoch = Date.now();
    const t0 = performance.now();
    const flood = closedLoop({
      connections: S.fairFloodConnections,
      warmupMs: 0,
      measureMs: S.fairDeadlineMs,
      expectedStatus: 202,
      stopWhen: () => sent >= S.fairFloodMessages,
      send: (w, seq) => {
        sent++;
        return postQueued(floodAgent, api, a, aThreads[w % aThreads.length]!, messageFor(w, 6_000 + seq));
      },
      onGood: () => void accepted++,
    }).then((result) => {
      floodSendMs = performance.now() - t0;
      return result;
    });
    const drained = (async () => {
      await flood;
      while (performance.now() - t0 < S.fairDeadlineMs && (await unfinishedOfA()) !== 0) await sleep(100);
      floodOver = true;
    })();
    const following: Array<Promise<void>> = [];
    for (let i = 0; !floodOver; i++) {
      await sleep(Math.max(0, t0 + i * S.fairSteadyIntervalMs - performance.now()));
      if (floodOver) break;
      following.push(followOne(i, t0));
    }
    const floodResult = await flood;
    await drained;
    await Promise.all(following);

    const { rows } = await pool.query<{ n: number; completed: number; last_ms: number | null }>(
      `select count(*)::int as n, count(*) filter (where status = 'completed')::int as completed,
              (extract(epoch from max(finished_at)) * 1000)::float8 as last_ms
         from runs where org_id = $1 and finished_at is not null`,
      [a.orgId],
    );
    const aRow = rows[0];
    const aSeconds = aRow?.last_ms ? (aRow.last_ms - firstSendEpoch) / 1000 : Number.NaN;
    // Every run (A's and B's) finished in A's window: served promptly, B's messages are done inside
    // it and take their share from A, where first in, first out leaves most of them until after it.
    const inWindow = aRow?.last_ms ? await runsFinishedBetween(pool, firstSendEpoch, aRow.last_ms) : undefined;
    const done = steady.filter((r) => r.status === 'completed');
    if (accepted < S.fairFloodMessages) problems.push(`fairness ${mode}: ${accepted} of ${S.fairFloodMessages} of A's messages were accepted`);
    if (aRow && aRow.completed !== accepted) problems.push(`fairness ${mode}: ${aRow.completed} of A's ${accepted} accepted messages completed`);
    if (done.length !== steady.length) problems.push(`fairness ${mode}: ${steady.length - done.length} of B's ${steady.length} messages did not complete`);
    return {
      mode,
      floodMessages: S.fairFloodMessages,
      floodAccepted: accepted,
      floodSendErrors: floodResult.measured.errors + floodResult.tail.errors,
      floodSendMs: round(floodSendMs, 0),
      floodFinished: aRow?.n,
      floodCompleted: aRow?.completed,
      floodSecondsToLastFinish: round(aSeconds, 2),
      floodThroughputPerSec: round((aRow?.completed ?? 0) / aSeconds, 1),
      runsFinishedInFloodWindow: inWindow,
      pipelineThroughputPerSec: inWindow === undefined ? null : round(inWindow / aSeconds, 1),
      steadySent: steady.length,
      steadyCompleted: done.length,
      steadyOutcomes: steadyOutcomes.toJSON(),
      steadySendToCompletedMs: summarize(done.map((r) => r.sendToDoneMs)),
      // The 202 alone (the API shares its process with A's 50 connections), and the server's own figure.
      steadyAckMs: summarize(done.map((r) => r.ackMs)),
      steadyServerCreatedToFinishedMs: summarize(done.map((r) => r.serverMs).filter(Number.isFinite)),
      // B's messages sent while A's sends were still under way, and after (A's backlog draining).
      steadyDuringSendsMs: summarize(done.filter((r) => r.sentAtMs <= floodSendMs).map((r) => r.sendToDoneMs)),
      steadyWhileDrainingMs: summarize(done.filter((r) => r.sentAtMs > floodSendMs).map((r) => r.sendToDoneMs)),
      stageTimelineMs: await stageTimeline(pool),
      steadyStageTimelineMs: await stageTimeline(pool, b.orgId),
      serverLogs: { [api.label]: logFindings(api.label), [worker.label]: logFindings(worker.label) },
    };
  } finally {
    floodAgent.destroy();
    steadyAgent.destroy();
    await stopServer(worker);
    await stopServer(api);
  }
}

/** Creates a throw-away database (the server would too; the floor server needs it first) and a pool to it. */
async function createDatabase(target: Instance): Promise<pg.Pool> {
  const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres`, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    createdDatabases.push(target.dbName);
    await admin.query(`create database "${target.dbName}"`);
  } finally {
    await admin.end();
  }
  const pool = new pg.Pool({ connectionString: target.databaseUrl, max: 2 });
  pool.on('error', () => {});
  pools.set(target.dbName, pool);
  return pool;
}

// --- cleanup --------------------------------------------------------------------------------------

async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  let rounds = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.unlink(...keys);
  } while (cursor !== '0' && ++rounds < 100_000);
  return deleted;
}

async function countKeys(redis: Redis, prefix: string): Promise<number> {
  let count = 0;
  let cursor = '0';
  let rounds = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    count += keys.length;
  } while (cursor !== '0' && ++rounds < 100_000);
  return count;
}

let cleaned: Promise<Record<string, unknown>> | undefined;
function cleanup(): Promise<Record<string, unknown>> {
  return (cleaned ??= (async () => {
    const report: Record<string, unknown> = {};
    sampler.stop();
    await stopAll().catch((e: Error) => (report.stopError = e.message));
    await fake?.close().catch(() => {});
    await Promise.all([...pools.values()].map((pool) => pool.end().catch(() => {})));
    pools.clear();
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3_000 });
    try {
      await redis.connect();
      const deleted: Record<string, number> = {};
      for (const prefix of [MAIN.prefix, E2E.prefix, SUSTAINED.prefix, PACED.prefix, FAIR_OFF.prefix, FAIR_ON.prefix, TTFT.prefix, STREAMS.prefix, FLOOR_PREFIX]) deleted[prefix] = await deleteKeys(redis, prefix);
      report.redisKeysDeleted = deleted;
    } catch (error) {
      report.redisError = (error as Error).message;
    } finally {
      redis.disconnect();
    }
    const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres`, connectionTimeoutMillis: 5_000 });
    try {
      await admin.connect();
      for (const name of createdDatabases) await admin.query(`drop database if exists "${name}" with (force)`);
      report.databasesDropped = createdDatabases;
    } catch (error) {
      report.databaseError = (error as Error).message;
    } finally {
      await admin.end().catch(() => {});
    }
    return report;
  })());
}

// --- report ---------------------------------------------------------------------------------------

interface Check {
  scenario: string;
  figure: string;
  value: number | string;
  unit: string;
  target?: string;
  pass?: boolean;
}

function printTable(checks: Check[]): void {
  const rows = checks.map((c) => [
    c.scenario,
    c.figure,
    typeof c.value === 'number' ? `${Number.isFinite(c.value) ? c.value : 'n/a'} ${c.unit}`.trim() : `${c.value} ${c.unit}`.trim(),
    c.target ?? '—',
    c.pass === undefined ? 'info' : c.pass ? 'PASS' : 'FAIL',
  ]);
  const header = ['scenario', 'figure', 'value', 'target', 'result'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** Peak resident memory of a process tree in MB (10^6 bytes; VmRSS is in KiB). */
/** `p50 / p90` of the signed error, and of its absolute value in brackets. */
function estimateErrors(accuracy: unknown): string {
  const a = accuracy as { errorMs?: { p50?: number; p90?: number }; absoluteErrorMs?: { p50?: number; p90?: number } } | undefined;
  return `${num(a?.errorMs?.p50)} / ${num(a?.errorMs?.p90)} (|error| ${num(a?.absoluteErrorMs?.p50)} / ${num(a?.absoluteErrorMs?.p90)})`;
}

function estimateRatios(accuracy: unknown): string {
  const r = (accuracy as { actualOverEstimate?: { p10?: number; p50?: number; p90?: number } } | undefined)?.actualOverEstimate;
  return `${num(r?.p10)} / ${num(r?.p50)} / ${num(r?.p90)}`;
}

type RegimeAccuracy = { messages?: number; actualOverEstimate?: { p50?: number }; absoluteErrorMs?: { p90?: number } };

/** `n: ratio p50, |error| p90` for the replies seen while the load was offered, then after it stopped. */
function estimateByRegime(accuracy: unknown): string {
  const a = accuracy as { replySeenDuringLoad?: RegimeAccuracy; replySeenAfterLoad?: RegimeAccuracy } | undefined;
  const one = (r: RegimeAccuracy | undefined) => `${num(r?.messages)}: ${num(r?.actualOverEstimate?.p50)}, ${num(r?.absoluteErrorMs?.p90)} ms`;
  return `${one(a?.replySeenDuringLoad)} | ${one(a?.replySeenAfterLoad)}`;
}

function megabytes(m: TreeMemory | undefined): number {
  return m ? (m.peakTreeRssKb * 1024) / 1e6 : Number.NaN;
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : Number.NaN;
}

// --- main -----------------------------------------------------------------------------------------

async function main(): Promise<number> {
  mkdirSync(RESULTS, { recursive: true });
  const startedAt = new Date();
  const loadAtStart = os.loadavg().map((v) => round(v, 2));
  const t0 = performance.now();
  log(`run ${RID}${QUICK ? ' (quick)' : ''}: databases ${MAIN.dbName}[_e2e], queue prefixes ${MAIN.prefix}[-e2e|-floor]`);
  sampler.start();
  const scenarios: Record<string, unknown> = {};
  const serverLogs: Record<string, unknown> = {};
  const database: Record<string, unknown> = {};

  const attempt = async <T>(name: string, work: () => Promise<T>): Promise<T | undefined> => {
    log(`${name}…`);
    const cpu0 = systemCpuTicks();
    const load0 = os.loadavg()[0];
    try {
      const result = await work();
      const cpu1 = systemCpuTicks();
      // Other work on the machine skews every figure; this shows how busy it was during the scenario.
      const machine = {
        cpuBusyPct: cpu1.total > cpu0.total ? round((100 * (cpu1.busy - cpu0.busy)) / (cpu1.total - cpu0.total), 1) : null,
        loadavg1AtStart: round(load0 ?? Number.NaN, 2),
      };
      scenarios[name] = { ...result, machine };
      return result;
    } catch (error) {
      const message = (error as Error).stack ?? String(error);
      harnessErrors.push(`${name}: ${message}`);
      scenarios[name] = { error: message };
      log(`${name} failed: ${message}`);
      return undefined;
    }
  };

  const mainPool = await createDatabase(MAIN);
  if (ONLY.has('floor')) await attempt('floor', scenarioFloor);

  // Server 1: the API alone (like the floor server, nothing consumes its queues), for scenarios 1 and 2.
  // Nothing drains its backlog, so the backlog limits (backpressure) are lifted: scenarios 1 and 2
  // measure the accept path itself, not its refusals.
  if (ONLY.has('queued') || ONLY.has('ack')) {
    const api = await startServer('server-api', MAIN, { BACKLOG_MAX_PER_ORG: '100000000', BACKLOG_MAX_TOTAL: '100000000' }, 'api');
    const tenant = await bootstrapTenant(MAIN);
    const threads = await createThreads(api, tenant, S.connections, 'Bench');
    log(`server up on :${api.port}, ${threads.length} threads (${round((performance.now() - t0) / 1000, 1)} s)`);
    if (ONLY.has('queued')) await attempt('queued', () => scenarioQueued(api, tenant, threads));
    if (ONLY.has('ack')) await attempt('ackLatency', () => scenarioAck(api, tenant, threads));
    database['server-api'] = await databaseFindings(mainPool);
    await stopServer(api);
    serverLogs['server-api'] = logFindings('server-api');
  }

  // Scenarios 4 and 4b: each on its own fresh database and prefix (no earlier backlog counted), with
  // an API process and BENCH_WORKERS worker processes (offline LLM).
  const withApiAndWorkers = async (
    label: string,
    target: Instance,
    threadCount: number,
    run: (api: Server, tenant: Tenant, threads: string[]) => Promise<unknown>,
  ): Promise<void> => {
    const pool = await createDatabase(target);
    const api = await startServer(label, target, {}, 'api');
    const workers = await startWorkers(`${label}-worker`, target);
    activeWorkers = workers;
    const tenant = await bootstrapTenant(target);
    const threads = await createThreads(api, tenant, threadCount, label);
    await run(api, tenant, threads);
    database[label] = await databaseFindings(pool);
    for (const worker of workers) await stopServer(worker);
    await stopServer(api);
    for (const server of [api, ...workers]) serverLogs[server.label] = logFindings(server.label);
  };
  if (ONLY.has('sustained')) {
    await withApiAndWorkers('server-offline', SUSTAINED, S.connections, (api, tenant, threads) =>
      attempt('sustained', () => scenarioSustained(api, tenant, threads)),
    );
  }
  // The same load with the queues (and the coordination between processes) on PostgreSQL.
  if (ONLY.has('sustained-pg')) {
    await withApiAndWorkers('server-offline-pg', SUSTAINED_PG, S.connections, (api, tenant, threads) =>
      attempt('sustainedPostgres', () => scenarioSustained(api, tenant, threads)),
    );
  }
  // Offered a set rate.
  if (ONLY.has('paced')) {
    await withApiAndWorkers('server-paced', PACED, S.pacedUsers, (api, tenant, threads) => attempt('paced', () => scenarioPaced(api, tenant, threads)));
  }

  // Server 2: the fake OpenAI server with 1248 ms latency, for scenario 3.
  if (ONLY.has('e2e')) {
    fake = await startFakeOpenAi({ apiKey: 'test', latencyMs: S.e2eLlmLatencyMs });
    const e2ePool = await createDatabase(E2E);
    const withLlm = await startServer('server-fake-llm', E2E, { OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url });
    const tenant = await bootstrapTenant(E2E);
    const e2eThreads = await createThreads(withLlm, tenant, S.e2eMessages, 'E2E');
    await attempt('endToEnd', () => scenarioEndToEnd(withLlm, tenant, e2eThreads, fake!));
    database['server-fake-llm'] = await databaseFindings(e2ePool);
    await stopServer(withLlm);
    serverLogs['server-fake-llm'] = logFindings('server-fake-llm');
  }

  // Scenario 6: the same flood without and with fairness, one after the other (BENCH_FAIR_FIRST=on swaps them).
  if (ONLY.has('fairness')) {
    const runs = [
      () => attempt('fairnessOff', () => scenarioFairness('off', FAIR_OFF)),
      () => attempt('fairnessOn', () => scenarioFairness('on', FAIR_ON)),
    ];
    if (process.env.BENCH_FAIR_FIRST === 'on') runs.reverse();
    for (const run of runs) await run();
  }
  // Scenarios 7 and 8 (bench/streams.bench.ts): an API process and a worker on a fresh database each.
  const streamDeps = (target: Instance): StreamBenchDeps<Server, Tenant> => ({
    quick: QUICK,
    log,
    async startApiAndWorker(label, env) {
      const pool = await createDatabase(target);
      const api = await startServer(label, target, env, 'api');
      const worker = await startServer(`${label}-worker`, target, env, 'worker');
      const tenant = await bootstrapTenant(target);
      return {
        api,
        worker,
        tenant,
        async close() {
          database[label] = await databaseFindings(pool);
          await stopServer(worker);
          await stopServer(api);
          for (const server of [api, worker]) serverLogs[server.label] = logFindings(server.label);
        },
      };
    },
    createThreads,
    headers: authHeaders,
    async postQueued(server, tenant, threadId, content) {
      const agent = createAgent(1);
      try {
        const res = await postQueued(agent, server, tenant, threadId, content);
        return { status: res.status, batchId: batchIdOf(res.body) };
      } finally {
        agent.destroy();
      }
    },
  });
  if (ONLY.has('ttft')) await attempt('ttft', () => scenarioTtft(streamDeps(TTFT)));
  if (ONLY.has('streams')) await attempt('streams', () => scenarioStreams(streamDeps(STREAMS)));
  // Scenario 9: a bare machine, on its own (no shared PostgreSQL or Redis inside its namespace).
  if (ONLY.has('bare')) await attempt('bareStart', () => scenarioBareStart(log));

  // Server 3: API and workers in one process, the fake LLM streaming after 300 ms, for scenario 8.
  if (ONLY.has('door')) {
    const doorFake = await startFakeOpenAi({ apiKey: 'test', latencyMs: S.doorLlmLatencyMs });
    doorFake.setStreaming({ firstTokenMs: 0, tokenIntervalMs: 20, wordsPerChunk: 1 });
    try {
      const doorPool = await createDatabase(DOOR);
      const server = await startServer('server-door', DOOR, { OPENAI_API_KEY: 'test', OPENAI_BASE_URL: doorFake.url });
      const tenant = await bootstrapTenant(DOOR);
      await attempt('doorTtft', () =>
        measureDoorTtft({ port: server.port, headers: authHeaders(tenant), fake: doorFake, requests: S.doorRequests, warmup: S.doorWarmup }),
      );
      database['server-door'] = await databaseFindings(doorPool);
      await stopServer(server);
      serverLogs['server-door'] = logFindings('server-door');
    } finally {
      await doorFake.close();
    }
  }

  // Redis keys under the prefix of a server that ran tell whether it honoured QUEUE_PREFIX.
  let serverKeys: number | undefined;
  const checkedPrefix = ONLY.has('e2e') ? E2E.prefix : ONLY.has('queued') || ONLY.has('ack') ? MAIN.prefix : ONLY.has('sustained') ? SUSTAINED.prefix : ONLY.has('paced') ? PACED.prefix : undefined;
  if (checkedPrefix) {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      serverKeys = await countKeys(redis, checkedPrefix);
      if (serverKeys === 0) problems.push(`no Redis keys under ${checkedPrefix}:* after the run — QUEUE_PREFIX may be ignored (keys left under another prefix are not cleaned up)`);
    } catch {
      /* reported by cleanup */
    } finally {
      redis.disconnect();
    }
  }

  const cleanupReport = await cleanup();

  // --- figures ----------------------------------------------------------------------------------
  const floor = scenarios.floor as Record<string, unknown> | undefined;
  const queued = scenarios.queued as Record<string, unknown> | undefined;
  const ack = scenarios.ackLatency as Record<string, unknown> | undefined;
  const sustained = scenarios.sustained as Record<string, unknown> | undefined;
  const sustainedPg = scenarios.sustainedPostgres as Record<string, unknown> | undefined;
  const sustainedPgAudit = sustainedPg?.replyAudit as ReplyAudit | undefined;
  const transportRatio = round(num(sustainedPg?.repliesPerSecInWindow) / num(sustained?.repliesPerSecInWindow), 3);
  const paced = scenarios.paced as (Record<string, unknown> & { acceptToReplySeenMs?: { p50: number; p99: number }; replyAudit?: ReplyAudit }) | undefined;
  const sustainedAudit = sustained?.replyAudit as ReplyAudit | undefined;
  // Exactly one reply for every accepted message, none for anything else, as read over HTTP.
  const oneReplyEach = (audit: ReplyAudit | undefined) => !!audit && audit.accepted > 0 && audit.withOneReply === audit.accepted && audit.unexpectedReplies === 0;
  const replyCounts = (audit: ReplyAudit | undefined) =>
    audit ? `${audit.withOneReply} / ${audit.withoutReply} / ${audit.withSeveralReplies + audit.unexpectedReplies}` : 'n/a';
  // API processes (HTTP only): the accept path alone, and the ones serving the throughput scenarios' load and pollers.
  const apiLabels = ['server-api', 'server-offline', 'server-offline-pg', 'server-paced', 'server-fair-off', 'server-fair-on'].filter((label) => memory[label]);
  const apiPeak = apiLabels.reduce<{ label: string; mb: number }>(
    (best, label) => {
      const value = megabytes(memory[label]);
      return !(value <= best.mb) ? { label, mb: value } : best;
    },
    { label: 'none ran', mb: Number.NaN },
  );
  const e2e = scenarios.endToEnd as Record<string, unknown> | undefined;
  const ratio = round(num(queued?.reqPerSec) / num(floor?.reqPerSec), 3);
  const ackLatency = ack?.latencyFromScheduleMs as ReturnType<typeof summarize> | undefined;
  const e2eLatency = e2e?.sendToCompletedMs as ReturnType<typeof summarize> | undefined;
  const e2eAck = e2e?.ackToCompletedMs as ReturnType<typeof summarize> | undefined;
  const e2eServer = e2e?.serverCreatedToFinishedMs as ReturnType<typeof summarize> | undefined;
  const mb = (m: TreeMemory | undefined) => round(megabytes(m), 1);
  type Summary = ReturnType<typeof summarize>;
  const fairOff = scenarios.fairnessOff as (Record<string, unknown> & { steadySendToCompletedMs?: Summary }) | undefined;
  const fairOn = scenarios.fairnessOn as (Record<string, unknown> & { steadySendToCompletedMs?: Summary }) | undefined;
  const fairRatio = round(num(fairOn?.floodThroughputPerSec) / num(fairOff?.floodThroughputPerSec), 3);
  type Cost = { cpuMsPerMessage: Record<string, number | null>; redis?: { commandsPerMessage?: number } };
  const costOf = (scenario: Record<string, unknown> | undefined) => scenario?.costPerMessage as Cost | undefined;
  const costRow = (scenario: Record<string, unknown> | undefined) => {
    const c = costOf(scenario)?.cpuMsPerMessage;
    return c ? [c.api, c.workers, c.postgres, c.redis].map((v) => (v === null || v === undefined ? 'n/a' : v)).join(' / ') : 'n/a';
  };
  const bare = scenarios.bareStart as Record<string, unknown> | undefined;
  const door = scenarios.doorTtft as DoorTtftResult | undefined;

  const checks: Check[] = [
    { scenario: '1 floor', figure: 'req/s (100 conns)', value: num(floor?.reqPerSec), unit: 'req/s' },
    { scenario: '1 floor', figure: 'errors', value: num(floor?.errors), unit: '' },
    { scenario: '1 queued', figure: 'req/s (100 conns)', value: num(queued?.reqPerSec), unit: 'req/s' },
    { scenario: '1 queued', figure: 'errors', value: num(queued?.errors), unit: '' },
    { scenario: '1 queued', figure: 'queued / floor', value: ratio, unit: '', target: `≥ ${TARGETS.ratio}`, pass: ratio >= TARGETS.ratio },
    { scenario: '2 ack', figure: 'p50 (from schedule)', value: num(ackLatency?.p50), unit: 'ms' },
    { scenario: '2 ack', figure: 'p99 (from schedule)', value: num(ackLatency?.p99), unit: 'ms', target: `≤ ${TARGETS.ackP99Ms} ms`, pass: num(ackLatency?.p99) <= TARGETS.ackP99Ms },
    { scenario: '2 ack', figure: 'errors', value: num(ack?.errors), unit: '' },
    { scenario: '3 e2e', figure: 'p50 send→completed', value: num(e2eLatency?.p50), unit: 'ms', target: `≤ ${TARGETS.e2eP50Ms} ms`, pass: num(e2eLatency?.p50) <= TARGETS.e2eP50Ms },
    { scenario: '3 e2e', figure: 'p99 send→completed', value: num(e2eLatency?.p99), unit: 'ms' },
    { scenario: '3 e2e', figure: 'p50 / p99 202→completed', value: `${num(e2eAck?.p50)} / ${num(e2eAck?.p99)}`, unit: 'ms' },
    { scenario: '3 e2e', figure: 'p50 / p99 server createdAt→finishedAt', value: `${num(e2eServer?.p50)} / ${num(e2eServer?.p99)}`, unit: 'ms' },
    { scenario: '3 e2e', figure: 'completed', value: `${num(e2e?.completed)} / ${S.e2eMessages}`, unit: '' },
    {
      scenario: '4 sustained',
      figure: 'replies/s seen over HTTP during the load',
      value: num(sustained?.repliesPerSecInWindow),
      unit: 'msg/s',
      target: `≥ ${TARGETS.sustainedPerSec}, one reply each`,
      pass: num(sustained?.repliesPerSecInWindow) >= TARGETS.sustainedPerSec && oneReplyEach(sustainedAudit),
    },
    { scenario: '4 sustained', figure: 'window / accepted / accept rate', value: `${num(sustained?.measurementWindowMs)} ms / ${num(sustained?.accepted)} / ${num(sustained?.acceptRatePerSec)}`, unit: 'msg/s' },
    { scenario: '4 sustained', figure: 'replies: one / none / duplicate or stray', value: replyCounts(sustainedAudit), unit: '' },
    { scenario: '4 sustained', figure: 'replies/s draining after the load / db runs/s', value: `${num(sustained?.repliesPerSecDraining)} / ${num(sustained?.pipelineFinishedPerSec)}`, unit: 'msg/s' },
    { scenario: '4 sustained', figure: 'poll requests/s (4 pollers)', value: num(sustained?.pollRequestsPerSec), unit: 'req/s' },
    { scenario: '4 sustained', figure: 'CPU ms/msg: api / workers / postgres / redis', value: costRow(sustained), unit: 'ms' },
    { scenario: '4 sustained', figure: 'per msg: Redis commands / PostgreSQL commits', value: `${num(costOf(sustained)?.redis?.commandsPerMessage)} / ${num((sustained?.postgresPerAcceptedMessage as { commits?: number } | undefined)?.commits)}`, unit: '' },
    { scenario: '4 sustained', figure: 'estimatedCompletion error p50 / p90 (actual − estimate)', value: estimateErrors(sustained?.estimatedCompletion), unit: 'ms' },
    { scenario: '4 sustained', figure: 'actual / estimate p10 / p50 / p90', value: estimateRatios(sustained?.estimatedCompletion), unit: '' },
    { scenario: '4 sustained', figure: 'estimate, reply during | after load: n: ratio p50, |error| p90', value: estimateByRegime(sustained?.estimatedCompletion), unit: '' },
    {
      scenario: '4c sustained, PostgreSQL transport',
      figure: 'replies/s seen after warm-up (queues on PostgreSQL)',
      value: num(sustainedPg?.repliesPerSecInWindow),
      unit: 'msg/s',
      target: 'one reply each',
      pass: oneReplyEach(sustainedPgAudit),
    },
    { scenario: '4c sustained, PostgreSQL transport', figure: 'replies: one / none / duplicate or stray', value: replyCounts(sustainedPgAudit), unit: '' },
    {
      scenario: '4c sustained, PostgreSQL transport',
      figure: 'ratio to 4 (Redis), same run',
      value: transportRatio,
      unit: '×',
      target: `≥ ${TARGETS.postgresTransportRatio}`,
      pass: transportRatio >= TARGETS.postgresTransportRatio,
    },
    {
      scenario: '4b paced',
      figure: 'offered (Poisson) → replies/s seen',
      value: `${num(paced?.offeredRatePerSec)} → ${num(paced?.repliesPerSecInWindow)}`,
      unit: 'msg/s',
      target: `keeps up at ≥ ${TARGETS.sustainedPerSec}`,
      // The nominal rate: the seeded Poisson schedule offers within about 1 % of it.
      pass: paced?.keptUp === true && num(paced?.targetRatePerSec) >= TARGETS.sustainedPerSec,
    },
    { scenario: '4b paced', figure: 'accept → reply seen p50 / p99', value: `${num(paced?.acceptToReplySeenMs?.p50)} / ${num(paced?.acceptToReplySeenMs?.p99)}`, unit: 'ms', target: `p99 ≤ ${TARGETS.pacedLagP99Ms} ms` },
    { scenario: '4b paced', figure: 'replies: one / none / duplicate or stray', value: replyCounts(paced?.replyAudit), unit: '' },
    { scenario: '4b paced', figure: 'CPU ms/msg: api / workers / postgres / redis', value: costRow(paced), unit: 'ms' },
    { scenario: '4b paced', figure: 'estimatedCompletion error p50 / p90 (actual − estimate)', value: estimateErrors(paced?.estimatedCompletion), unit: 'ms' },
    { scenario: '4b paced', figure: 'actual / estimate p10 / p50 / p90', value: estimateRatios(paced?.estimatedCompletion), unit: '' },
    { scenario: '4b paced', figure: 'estimate, reply during | after load: n: ratio p50, |error| p90', value: estimateByRegime(paced?.estimatedCompletion), unit: '' },
    { scenario: '6 fairness', figure: "off: B's p50 / p99 send→completed", value: `${num(fairOff?.steadySendToCompletedMs?.p50)} / ${num(fairOff?.steadySendToCompletedMs?.p99)}`, unit: 'ms' },
    {
      scenario: '6 fairness',
      figure: "on: B's p50 send→completed",
      value: num(fairOn?.steadySendToCompletedMs?.p50),
      unit: 'ms',
      target: `≤ ${TARGETS.fairBP50Ms} ms`,
      pass: num(fairOn?.steadySendToCompletedMs?.p50) <= TARGETS.fairBP50Ms,
    },
    {
      scenario: '6 fairness',
      figure: "on: B's p99 send→completed",
      value: num(fairOn?.steadySendToCompletedMs?.p99),
      unit: 'ms',
      target: `≤ ${TARGETS.fairBP99Ms} ms`,
      pass: num(fairOn?.steadySendToCompletedMs?.p99) <= TARGETS.fairBP99Ms,
    },
    {
      scenario: '6 fairness',
      figure: "on: B's p50 / p99 202 alone; server createdAt→finishedAt",
      value: `${num((fairOn?.steadyAckMs as Summary | undefined)?.p50)} / ${num((fairOn?.steadyAckMs as Summary | undefined)?.p99)}; ${num((fairOn?.steadyServerCreatedToFinishedMs as Summary | undefined)?.p50)} / ${num((fairOn?.steadyServerCreatedToFinishedMs as Summary | undefined)?.p99)}`,
      unit: 'ms',
    },
    { scenario: '6 fairness', figure: "B's messages completed off / on", value: `${num(fairOff?.steadyCompleted)}/${num(fairOff?.steadySent)} / ${num(fairOn?.steadyCompleted)}/${num(fairOn?.steadySent)}`, unit: '' },
    { scenario: '6 fairness', figure: "all runs/s in A's window off / on", value: `${num(fairOff?.pipelineThroughputPerSec)} / ${num(fairOn?.pipelineThroughputPerSec)}`, unit: 'msg/s' },
    { scenario: '6 fairness', figure: "A's throughput off / on", value: `${num(fairOff?.floodThroughputPerSec)} / ${num(fairOn?.floodThroughputPerSec)}`, unit: 'msg/s' },
    {
      scenario: '6 fairness',
      figure: "A's throughput on / off",
      value: fairRatio,
      unit: '',
      target: `≥ ${TARGETS.fairThroughputRatio}`,
      pass: fairRatio >= TARGETS.fairThroughputRatio,
    },
    {
      scenario: '5 RSS',
      figure: `peak API process (${apiPeak.label})`,
      value: round(apiPeak.mb, 1),
      unit: 'MB',
      target: `≤ ${TARGETS.apiRssMb} MB`,
      pass: apiPeak.mb <= TARGETS.apiRssMb,
    },
    ...(
      [
        ['peak server-api (accept path)', 'server-api'],
        ['peak server-offline / its worker', 'server-offline', 'server-offline-worker'],
        ['peak server-paced / its worker', 'server-paced', 'server-paced-worker'],
        ['peak server-fake-llm (API + workers)', 'server-fake-llm'],
        ['peak server-fair-off / its worker', 'server-fair-off', 'server-fair-off-worker'],
        ['peak server-fair-on / its worker', 'server-fair-on', 'server-fair-on-worker'],
        ['peak server-door (API + workers)', 'server-door'],
        ['peak floor-server', 'floor-server'],
      ] as const
    )
      .filter(([, first]) => memory[first])
      .map(([figure, ...labels]): Check => ({ scenario: '5 RSS', figure, value: labels.map((label) => mb(memory[label])).join(' / '), unit: 'MB' })),
    ...streamChecks(scenarios),
    ...(bare?.skipped
      ? [{ scenario: '9 bare start', figure: `skipped: ${String(bare.skipped)}`, value: '-', unit: '' }]
      : [
          {
            scenario: '9 bare start',
            figure: 'npm start → healthy, first start (worst)',
            value: num(bare?.firstStartWorstMs),
            unit: 'ms',
            target: `≤ ${BARE_TARGETS.firstStartMs} ms`,
            pass: bare?.firstStartWorstMs !== undefined && num(bare.firstStartWorstMs) <= BARE_TARGETS.firstStartMs,
          },
          {
            scenario: '9 bare start',
            figure: 'npm start → healthy, restart (worst)',
            value: num(bare?.restartWorstMs),
            unit: 'ms',
            target: `≤ ${BARE_TARGETS.restartMs} ms`,
            pass: bare?.restartWorstMs !== undefined && num(bare.restartWorstMs) <= BARE_TARGETS.restartMs,
          },
          {
            scenario: '9 bare start',
            figure: 'CPU s of npm start until healthy: first / restart (p50)',
            value: `${num((bare?.firstStartCpuSeconds as { p50?: number } | undefined)?.p50)} / ${num((bare?.restartCpuSeconds as { p50?: number } | undefined)?.p50)}`,
            unit: 's',
          },
          {
            scenario: '9 bare start',
            figure: 'postgres processes left / shutdowns not complete',
            value: `${num(bare?.leftRunning)} / ${num(bare?.incompleteShutdowns)}`,
            unit: '',
            target: '0 / 0',
            pass: bare?.leftRunning === 0 && bare?.incompleteShutdowns === 0,
          },
        ]),
    {
      scenario: '10 door TTFT',
      figure: 'p50 first token − fake LLM first token',
      value: num(door?.overheadMs.p50),
      unit: 'ms',
      target: `≤ ${TARGETS.doorOverheadP50Ms} ms`,
      pass: num(door?.overheadMs.p50) <= TARGETS.doorOverheadP50Ms && door?.failed === 0,
    },
    { scenario: '10 door TTFT', figure: 'p90 / p99 of that', value: `${num(door?.overheadMs.p90)} / ${num(door?.overheadMs.p99)}`, unit: 'ms' },
    { scenario: '10 door TTFT', figure: 'p50 before LLM / after LLM', value: `${num(door?.beforeLlmMs.p50)} / ${num(door?.afterLlmMs.p50)}`, unit: 'ms' },
    { scenario: '10 door TTFT', figure: 'p50 client TTFT / fake LLM TTFT', value: `${num(door?.clientTtftMs.p50)} / ${num(door?.fakeTtftMs.p50)}`, unit: 'ms' },
    { scenario: '10 door TTFT', figure: 'requests / failed / streamed in pieces', value: `${num(door?.requests)} / ${num(door?.failed)} / ${num(door?.streamedInPieces)}`, unit: '' },
  ];

  // With BENCH_ONLY, leave out the rows of scenarios that did not run.
  const serversRan = ['floor', 'queued', 'ack', 'e2e', 'sustained', 'paced'].some((name) => ONLY.has(name));
  const ran = (c: Check) =>
    (c.scenario.startsWith('5') && serversRan) ||
    (c.scenario === '1 floor' && ONLY.has('floor')) ||
    (c.scenario === '1 queued' && ONLY.has('queued')) ||
    (c.scenario.startsWith('2') && ONLY.has('ack')) ||
    (c.scenario.startsWith('3') && ONLY.has('e2e')) ||
    (c.scenario.startsWith('4 ') && ONLY.has('sustained')) ||
    (c.scenario.startsWith('4c') && ONLY.has('sustained-pg') && (!c.figure.startsWith('ratio') || ONLY.has('sustained'))) ||
    (c.scenario.startsWith('4b') && ONLY.has('paced')) ||
    (c.scenario.startsWith('6') && ONLY.has('fairness')) ||
    (c.scenario.startsWith('7') && ONLY.has('ttft')) ||
    (c.scenario.startsWith('8') && ONLY.has('streams')) ||
    (c.scenario.startsWith('9') && ONLY.has('bare')) ||
    (c.scenario.startsWith('10') && ONLY.has('door'));
  checks.splice(0, checks.length, ...checks.filter(ran));

  const cpus = os.cpus();
  const report = {
    date: startedAt.toISOString(),
    durationSeconds: round((performance.now() - t0) / 1000, 1),
    quick: QUICK,
    runId: RID,
    machine: {
      cpus: cpus.length,
      cpuModel: cpus[0]?.model,
      totalMemoryBytes: os.totalmem(),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      loadavgAtStart: loadAtStart,
      loadavgAtEnd: os.loadavg().map((v) => round(v, 2)),
    },
    settings: { ...S, postgresTransport: PG_TRANSPORT },
    targets: TARGETS,
    checks,
    scenarios: { ...scenarios, ratio, transportRatio },
    memory,
    serverLogs,
    database,
    redisKeysUnderServerPrefix: serverKeys,
    problems,
    harnessErrors,
    cleanup: cleanupReport,
  };
  writeFileSync(`${RESULTS}latest.json`, `${JSON.stringify(report, null, 2)}\n`);

  console.log(`\nhoneyjar queued-endpoint benchmark${QUICK ? ' (BENCH_QUICK: ~5× shorter)' : ''} — ${cpus.length} CPUs, ${round(os.totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, PostgreSQL over ${PG_TRANSPORT}, ${report.durationSeconds} s, load average ${loadAtStart.join(' ')} at start\n`);
  printTable(checks);
  if (problems.length) {
    console.log('\nproblems:');
    for (const p of problems) console.log(`  - ${p}`);
  }
  if (harnessErrors.length) {
    console.log('\nharness errors:');
    for (const e of harnessErrors) console.log(`  - ${e.split('\n')[0]}`);
  }
  console.log(`\nfigures: bench/results/latest.json; server logs: bench/results/*.log`);
  return harnessErrors.length ? 1 : 0;
}

// --- process lifetime: bounded, and every child killed whatever happens ----------------------------

process.on('exit', killAllSync);
const abort = (why: string, code: number) => {
  log(`${why}: cleaning up`);
  const force = setTimeout(() => process.exit(code), 20_000);
  force.unref();
  void cleanup().finally(() => process.exit(code));
};
process.on('SIGINT', () => abort('SIGINT', 130));
process.on('SIGTERM', () => abort('SIGTERM', 143));
const watchdog = setTimeout(() => abort(`hard limit of ${S.hardLimitMs / 1000} s reached`, 1), S.hardLimitMs);

main().then(
  (code) => {
    clearTimeout(watchdog);
    process.exit(code);
  },
  (error: unknown) => {
    clearTimeout(watchdog);
    log(`harness error: ${(error as Error).stack ?? String(error)}`);
    try {
      mkdirSync(RESULTS, { recursive: true });
      const report = { date: new Date().toISOString(), runId: RID, harnessError: (error as Error).stack ?? String(error), problems, harnessErrors };
      writeFileSync(`${RESULTS}latest.json`, `${JSON.stringify(report, null, 2)}\n`);
    } catch {
      /* nothing more to do */
    }
    void cleanup().finally(() => process.exit(1));
  },
);
