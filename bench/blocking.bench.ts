/**
 * Latency of the original, blocking endpoint with the offline LLM provider: an API process on a
 * fresh database, one client sending messages one after another (each a new exchange in one of a
 * few threads), p50/p95/p99 of the full answer. Run: `npx tsx bench/blocking.bench.ts`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createAgent, httpRequest } from './lib/http.js';
import { freePort, runToCompletion, spawnChild, stopAll } from './lib/procs.js';
import { round, sleep, summarize } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = `${ROOT}bench/results/`;
const RID = randomBytes(4).toString('hex');
const DB = `honeyjar_bench_blocking_${RID}`;
const MESSAGES = 200;
const WARMUP = 20;
const QUESTIONS = [
  'Draft a short statement about the delayed launch',
  'Who approves public statements in a crisis?',
  'hello!',
  'Find the email of Sarah Chen at The Verge',
  'Compare our coverage this quarter with last quarter',
];

async function main(): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  const port = await freePort();
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${DB}`,
    REDIS_URL: 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `bench-blocking-${RID}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_MAX: '100000000',
  };
  const server = spawnChild('blocking-api', process.execPath, ['bin/honeyjar.js', 'api'], { cwd: ROOT, env, logFile: `${RESULTS}blocking-api.log` });
  const agent = createAgent(1);
  try {
    for (let ready = false; !ready; ) {
      if (server.hasExited()) throw new Error(`server exited:\n${server.tail()}`);
      ready = (await httpRequest(agent, port, { method: 'GET', path: '/api/v1/chat/system/health' }).catch(() => undefined))?.status === 200;
      if (!ready) await sleep(100);
    }
    const { orgId, token } = JSON.parse(
      await runToCompletion('bootstrap', process.execPath, ['bin/honeyjar.js', 'bootstrap', '--org', 'Blocking', '--email', 'b@example.com'], { cwd: ROOT, env, logFile: `${RESULTS}blocking-bootstrap.log`, timeoutMs: 60_000 }),
    ) as { orgId: string; token: string };
    const headers = { authorization: `Bearer ${token}`, 'x-organization-id': orgId };
    await httpRequest(agent, port, {
      method: 'POST',
      path: '/api/v1/documents',
      headers,
      body: JSON.stringify({ title: 'Crisis playbook', content: 'The head of communications approves every public statement before release.' }),
    });
    const threads: string[] = [];
    for (let i = 0; i < 10; i++) {
      threads.push(JSON.parse((await httpRequest(agent, port, { method: 'POST', path: '/api/v1/chat/threads', headers, body: '{}' })).body).id);
    }
    const latencies: number[] = [];
    for (let i = 0; i < MESSAGES + WARMUP; i++) {
      const t0 = performance.now();
      const res = await httpRequest(agent, port, {
        method: 'POST',
        path: `/api/v1/chat/threads/${threads[i % threads.length]}/messages`,
        headers,
        body: JSON.stringify({ content: QUESTIONS[i % QUESTIONS.length] }),
      });
      const ms = performance.now() - t0;
      if (res.status !== 200 || JSON.parse(res.body).status !== 'completed') throw new Error(`unexpected answer ${res.status}: ${res.body.slice(0, 300)}`);
      if (i >= WARMUP) latencies.push(ms);
    }
    const s = summarize(latencies);
    console.log(`blocking endpoint, offline provider, ${MESSAGES} sequential messages (10 threads, history growing to ${Math.ceil((MESSAGES + WARMUP) / 10)} exchanges):`);
    console.log(`  p50 ${round(s.p50, 1)} ms   p90 ${round(s.p90, 1)} ms   p99 ${round(s.p99, 1)} ms   max ${round(s.max, 1)} ms`);
  } finally {
    agent.destroy();
    await stopAll();
    const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    await admin.query(`drop database if exists "${DB}" with (force)`);
    await admin.end();
  }
}

await main();
