/**
 * Real processes: an `api` and two `worker` processes against the loopback RocketReach fake
 * (150 ms per request, one checkStatus poll per lookup). Each worker process would run 5
 * rocketreach jobs at once (CONCURRENCY_ROCKETREACH=5), but the queue's global concurrency
 * (ROCKETREACH_MAX_CONCURRENT=2) holds the fake to at most 2 requests at a time across both
 * processes. Every lookup completes with the person's contact, the key travels in the `Api-Key`
 * header, and asking again for the same person in the same organization is served from the cache.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeRocketReach, type FakePerson, type FakeRocketReach } from '../../fakes/rocketreach.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  bootstrapTenant,
  deleteRedisKeys,
  http,
  killAll,
  serverEnv,
  startServerProcess,
  waitUntil,
  type ProcessTenant,
  type ServerProcess,
} from '../../support/processes.js';

const GLOBAL_LIMIT = 2;
const FIRST_NAMES = ['Ada', 'Brian', 'Chloe', 'Dmitri', 'Elena', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas'];
const EMPLOYERS = ['Northwind Media', 'Globex Daily'];
const PEOPLE: FakePerson[] = FIRST_NAMES.flatMap((first, i) =>
  EMPLOYERS.map((employer, j) => {
    const last = `Reporter${i}${j}`;
    return {
      name: `${first} ${last}`,
      currentEmployer: employer,
      currentTitle: 'Technology Reporter',
      emails: [{ email: `${first}.${last}@${employer.split(' ')[0]!.toLowerCase()}.example`.toLowerCase(), smtp_valid: 'valid' as const, grade: 'A' }],
      phones: [{ number: `+1-555-01${i}${j}`, recommended: true }],
    };
  }),
);

let database: TestDatabase | undefined;
let fake: FakeRocketReach | undefined;
let prefix: string | undefined;
let api: ServerProcess;
let tenant: ProcessTenant;

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `test-${database.name}`;
  fake = await startFakeRocketReach({ apiKey: 'test-key', latencyMs: 150, pollsUntilComplete: 1, people: PEOPLE });
  const env = serverEnv(
    { databaseUrl: database.url, prefix },
    {
      ROCKETREACH_API_KEY: 'test-key',
      ROCKETREACH_BASE_URL: fake.url,
      ROCKETREACH_POLL_INTERVAL_MS: '20',
      ROCKETREACH_MAX_CONCURRENT: String(GLOBAL_LIMIT),
      CONCURRENCY_ROCKETREACH: '5',
      RATE_LIMIT_MAX: '100000',
    },
  );
  tenant = await bootstrapTenant(env, 'Lookup Test', 'admin@lookup.test');
  [api] = await Promise.all([
    startServerProcess('api', env, { name: 'api' }),
    startServerProcess('worker', env, { name: 'worker-1' }),
    startServerProcess('worker', env, { name: 'worker-2' }),
  ]);
}, 90_000);

afterAll(async () => {
  await killAll();
  await fake?.close();
  if (prefix) await deleteRedisKeys(prefix);
  await database?.drop();
}, 30_000);

async function waitForRuns(db: TestDatabase, total: number): Promise<void> {
  await waitUntil(
    async () => {
      const { rows } = await db.pool.query<{ open: number; total: number }>(
        `select count(*) filter (where finished_at is null)::int as open, count(*)::int as total from runs`,
      );
      return rows[0]!.total === total && rows[0]!.open === 0;
    },
    {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `${total} runs finished`,
      details: async () => {
        const { rows } = await db.pool.query(`select stage, status, count(*)::int from run_steps group by 1, 2 order by 1, 2`);
        return JSON.stringify(rows);
      },
    },
  );
}

function comprehensive(person: FakePerson) {
  return http(api.baseUrl(), 'POST', '/api/v1/chat/comprehensive', {
    headers: tenant.headers,
    body: {
      message: `Who covers technology at ${person.currentEmployer}? I would like to reach ${person.name}.`,
      contacts: [{ name: person.name, employer: person.currentEmployer }],
    },
  });
}

describe('RocketReach lookups from two worker processes', () => {
  it('never exceed the global concurrency, all complete, and a repeated lookup is served from the cache', async () => {
    const db = database!;
    const rr = fake!;

    const accepted = await Promise.all(PEOPLE.map((person) => comprehensive(person)));
    for (const res of accepted) expect(res.status, res.text).toBe(202);
    const batchIds = accepted.map((res) => res.body.data.tracking.batchId as string);
    await waitForRuns(db, PEOPLE.length);

    // At most two requests at the fake at any moment, across both processes.
    const calls = rr.requests.filter((r) => r.path.endsWith('/person/lookup') || r.path.endsWith('/person/checkStatus'));
    expect(rr.requestsTo('/person/lookup')).toHaveLength(PEOPLE.length);
    expect(rr.requestsTo('/person/checkStatus').length).toBeGreaterThanOrEqual(PEOPLE.length);
    // From the recorded arrival and finish times of the lookup and status requests…
    const edges = calls.flatMap((r) => [
      { at: r.receivedAt, delta: 1 },
      { at: r.finishedAt ?? Number.POSITIVE_INFINITY, delta: -1 },
    ]);
    edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let open = 0;
    let peak = 0;
    for (const edge of edges) peak = Math.max(peak, (open += edge.delta));
    expect(peak).toBeLessThanOrEqual(GLOBAL_LIMIT);
    // …and the fake's own count, which covers every request (equal when no other kind was made).
    if (calls.length === rr.requests.length) expect(rr.maxConcurrent).toBeLessThanOrEqual(GLOBAL_LIMIT);

    // The key went in the Api-Key header, never in the query string.
    for (const r of rr.requests) {
      expect(r.headers['api-key']).toBe('test-key');
      expect(r.query).not.toHaveProperty('api_key');
    }
    expect(calls.every((r) => r.status === 200)).toBe(true);

    // Every lookup completed with that person's contact.
    for (const [i, batchId] of batchIds.entries()) {
      const person = PEOPLE[i]!;
      const res = await http(api.baseUrl(), 'GET', `/api/v1/chat/batch/${batchId}/results`, { headers: tenant.headers });
      expect(res.status, res.text).toBe(200);
      expect(res.body.status, res.text).toBe('completed');
      const lookup = res.body.results.rocketreach as { status: string; contacts: Array<{ name: string; employer?: string; emails: string[] }>; cached?: boolean };
      expect(lookup.status, res.text).toBe('completed');
      expect(lookup.cached).toBeUndefined();
      expect(lookup.contacts).toEqual([
        expect.objectContaining({ name: person.name, employer: person.currentEmployer, emails: [person.emails![0]!.email] }),
      ]);
    }

    // The same person again, in the same organization: no new call to RocketReach.
    const lookupsBefore = rr.requestsTo('/person/lookup').length;
    const statusBefore = rr.requestsTo('/person/checkStatus').length;
    const again = await comprehensive(PEOPLE[0]!);
    expect(again.status, again.text).toBe(202);
    await waitForRuns(db, PEOPLE.length + 1);
    const res = await http(api.baseUrl(), 'GET', `/api/v1/chat/batch/${again.body.data.tracking.batchId}/results`, { headers: tenant.headers });
    expect(res.body.status, res.text).toBe('completed');
    expect(res.body.results.rocketreach).toMatchObject({
      status: 'completed',
      cached: true,
      contacts: [expect.objectContaining({ name: PEOPLE[0]!.name })],
    });
    expect(rr.requestsTo('/person/lookup')).toHaveLength(lookupsBefore);
    expect(rr.requestsTo('/person/checkStatus')).toHaveLength(statusBefore);

    console.info(
      `[rocketreach] peak concurrency at the fake: ${rr.maxConcurrent} (from timestamps: ${peak}), ` +
        `lookups: ${lookupsBefore}, status polls: ${rr.requestsTo('/person/checkStatus').length}`,
    );
  }, 90_000);
});
