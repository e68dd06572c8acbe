import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRunsRepository, type RunsRepository } from '../../src/adapters/postgres/run-store/index.js';
import { createTenancyRepository } from '../../src/adapters/postgres/repositories/tenancy.repository.js';
import { createThreadsRepository } from '../../src/adapters/postgres/repositories/threads.repository.js';
import { CATALOG } from '../../src/engine/catalog.js';
import { stageOrder } from '../../src/engine/dag.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/*
 * The takeover leases in PostgreSQL: concurrent takeovers take disjoint runs, and the lease
 * fences every step statement of a run against whoever does not hold it.
 */

let database: TestDatabase;
let runs: RunsRepository;
let orgId: string;
let userId: string;
let threadId: string;

beforeAll(async () => {
  database = await createTestDatabase();
  runs = createRunsRepository(database.db, database.pool, CATALOG);
  const tenancy = createTenancyRepository(database.db);
  orgId = (await tenancy.createOrganization('Leases org')).id;
  userId = (await tenancy.upsertUser('leases@example.com')).id;
  threadId = (await createThreadsRepository(database.db).create(orgId, userId, 'leases')).id;
});

afterAll(async () => {
  await database.drop();
});

// Each test starts with no open run: what the takeovers find is its own.
beforeEach(async () => {
  await database.pool.query(`update runs set status = 'cancelled', finished_at = now() where finished_at is null`);
});

async function accept(driver: 'queue' | 'inline' = 'queue'): Promise<string> {
  const id = randomUUID();
  const created = await runs.create({ id, orgId, threadId, userId, source: 'queued', driver, content: 'A line about the new office', stages: [...stageOrder(CATALOG)] });
  expect(created.kind).toBe('created');
  return id;
}

async function lease(runId: string) {
  const { rows } = await database.pool.query('select driver, lease_owner, lease_expires_at > now() as live from runs where id = $1', [runId]);
  return rows[0] as { driver: string; lease_owner: string | null; live: boolean | null };
}

describe('run leases', () => {
  it('concurrent takeovers take disjoint runs, oldest first, and leave in-process runs alone', async () => {
    const queued = [await accept(), await accept(), await accept(), await accept(), await accept(), await accept()];
    const inline = await accept('inline');
    const taken = await Promise.all(['a', 'b', 'c'].map((owner) => runs.takeOver(owner, 10_000, 100)));
    const ids = taken.flatMap((t) => t.map((r) => r.id));
    expect(ids.sort()).toEqual([...queued].sort());
    for (const t of taken) expect(t.map((r) => r.seq)).toEqual([...t.map((r) => r.seq)].sort((x, y) => x - y));
    expect((await lease(queued[0]!)).driver).toBe('inline');
    expect((await lease(inline)).lease_owner).toBeNull();
    // Taken once: nothing left to take.
    expect(await runs.takeOver('d', 10_000, 100)).toEqual([]);
    const owners = new Map(taken.flatMap((t, i) => t.map((r) => [r.id, ['a', 'b', 'c'][i]!] as const)));
    // Renewed only by the holder; released runs that stay open go back to the queues.
    const [first] = queued;
    const holder = owners.get(first!)!;
    expect(await runs.renewLeases('someone-else', [first!], 10_000)).toEqual([]);
    expect(await runs.renewLeases(holder, [first!], 10_000)).toEqual([first]);
    await runs.releaseLeases(holder, [first!]);
    expect(await lease(first!)).toEqual({ driver: 'queue', lease_owner: null, live: null });
    for (const [id, owner] of owners) if (id !== first) await runs.releaseLeases(owner, [id]);
  });

  it('fences load, claim, completion, failure and reply against a caller that does not hold the run', async () => {
    const id = await accept();
    expect(await runs.takeOver('holder', 10_000, 100)).toHaveLength(1);
    // Not the holder: nothing read to run, nothing written.
    expect(await runs.loadStep(id, 'intent')).toBeUndefined();
    expect(await runs.loadStep(id, 'intent', 'intruder')).toBeUndefined();
    expect((await runs.completeSteps(id, [{ stage: 'intent', result: { intent: 'other' } }])).written).toEqual([]);
    expect((await runs.failAttempt(id, 'security', { code: 'x', message: 'y' }, true)).written).toBe(false);
    // The holder runs the steps.
    expect(await runs.loadStep(id, 'intent', 'holder')).toBeDefined();
    const done = await runs.completeSteps(
      id,
      (['intent', 'security', 'rag', 'rocketreach'] as const).map((stage) => ({ stage, result: { stage } })),
      'holder',
    );
    expect(done.written.sort()).toEqual(['intent', 'rag', 'rocketreach', 'security']);
    expect(await runs.claimStep(id, 'openai', {})).toBeUndefined();
    expect(await runs.claimStep(id, 'openai', { lease: 'holder' })).toBeDefined();
    expect(await runs.completeWithReply(id, 'openai', 'not mine', { provider: 'x' })).toBeUndefined();
    expect(await runs.completeWithReply(id, 'openai', 'the reply', { provider: 'x' }, { lease: 'holder' })).toBeDefined();
    expect((await runs.assistantMessage(id))?.content).toBe('the reply');
  });

  it('lets anyone in once the lease expired, and a new takeover take it', async () => {
    const id = await accept();
    expect(await runs.takeOver('gone', 1, 100)).toHaveLength(1);
    await database.pool.query(`update runs set lease_expires_at = now() - interval '1 second' where id = $1`, [id]);
    expect(await runs.loadStep(id, 'intent')).toBeDefined();
    const [open] = await runs.openRunsOlderThan(0, 100).then((all) => all.filter((r) => r.id === id));
    expect(open?.lease).toBe('expired');
    expect((await runs.takeOver('next', 10_000, 100)).map((r) => r.id)).toEqual([id]);
    expect((await lease(id)).lease_owner).toBe('next');
  });
});
