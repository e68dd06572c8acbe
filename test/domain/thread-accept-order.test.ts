import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptColumns, CREATE_RUN } from '../../src/adapters/postgres/run-store/accept.js';
import { createRunsRepository, type RunsRepository } from '../../src/adapters/postgres/run-store/index.js';
import { createTenancyRepository } from '../../src/adapters/postgres/repositories/tenancy.repository.js';
import { createThreadsRepository } from '../../src/adapters/postgres/repositories/threads.repository.js';
import { stageOrder } from '../../src/engine/dag.js';
import { CATALOG } from '../../src/engine/catalog.js';
import type { NewRun } from '../../src/engine/run.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/*
 * Accepts of one thread commit in the order of their seqs, whichever connection (process) makes
 * them: an accept whose statement has taken a seq but not committed holds the thread, and a later
 * accept of that thread, alone or batched, waits for it instead of committing a higher seq first.
 */

let database: TestDatabase;
let runs: RunsRepository;
let orgId: string;
let userId: string;
let threadId: string;
let otherThreadId: string;

beforeAll(async () => {
  database = await createTestDatabase();
  runs = createRunsRepository(database.db as never, database.pool, CATALOG);
  const tenancy = createTenancyRepository(database.db);
  orgId = (await tenancy.createOrganization('Order org')).id;
  userId = (await tenancy.upsertUser('order@example.com')).id;
  const threads = createThreadsRepository(database.db);
  threadId = (await threads.create(orgId, userId, 'ordered')).id;
  otherThreadId = (await threads.create(orgId, userId, 'other')).id;
});

afterAll(async () => {
  await database.drop();
});

function newRun(thread: string): NewRun {
  return { id: randomUUID(), orgId, threadId: thread, userId, source: 'queued', driver: 'queue', content: 'Draft a statement', stages: [...stageOrder(CATALOG)] };
}

/** Resolves once `count` backends of this database wait for a lock. */
async function lockWaiters(count: number, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const { rows } = await database.pool.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (rows[0].n >= count) return;
    if (Date.now() > deadline) throw new Error(`fewer than ${count} accepts waited for the thread`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function seqOf(runId: string): Promise<number> {
  return Number((await database.pool.query('select seq from runs where id = $1', [runId])).rows[0].seq);
}

describe('accepting messages of one thread', () => {
  it('makes a later accept, alone or batched, wait for an earlier one that has its seq but has not committed', async () => {
    const inFlight = await database.pool.connect();
    try {
      await inFlight.query('begin');
      const first = newRun(threadId);
      await inFlight.query(CREATE_RUN, acceptColumns(first));
      const firstSeq = Number((await inFlight.query('select seq from runs where id = $1', [first.id])).rows[0].seq);

      const settled: string[] = [];
      const alone = newRun(threadId);
      const batched = [newRun(threadId), newRun(threadId)];
      const later = [alone, ...batched].map((run) =>
        runs.create(run).then((outcome) => {
          settled.push(run.id);
          return outcome;
        }),
      );
      // The single accept and the batch of two: two statements, each waiting for the thread.
      await lockWaiters(1);
      // A thread nobody holds is not held up.
      const elsewhere = await runs.create(newRun(otherThreadId));
      expect(elsewhere.kind).toBe('created');
      expect(settled).toEqual([]);

      await inFlight.query('commit');
      const outcomes = await Promise.all(later);
      expect(outcomes.map((o) => o.kind)).toEqual(['created', 'created', 'created']);
      for (const run of [alone, ...batched]) expect(await seqOf(run.id)).toBeGreaterThan(firstSeq);
    } finally {
      inFlight.release();
    }
  });
});
