import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresQueueBackend, type QueueBackend } from '../../src/adapters/bullmq/backend.js';
import { COMPLETED_RETENTION } from '../../src/adapters/bullmq/job-options.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitUntil } from '../support/processes.js';

/*
 * On PostgreSQL, BullMQ keeps completed jobs (its own trimming would read every kept job on each
 * completion) and the backend trims them by age in the background: a completed job is visible for
 * the keep time, then gone.
 */

let database: TestDatabase;
let backend: QueueBackend;

beforeAll(async () => {
  database = await createTestDatabase();
  backend = createPostgresQueueBackend({ url: database.url, poolMax: 4, workers: 1, logger: pino({ level: 'silent' }), completedKeepMs: 300, trimEveryMs: 100 });
});

afterAll(async () => {
  await backend.close();
  await database.drop();
});

describe('completed jobs on the PostgreSQL transport', () => {
  it('keeps a completed job for the keep time, then trims it', async () => {
    const name = `retention-${randomUUID().slice(0, 8)}`;
    const queue = backend.queue(name);
    const worker = backend.worker(name, async () => 'done', { concurrency: 1 });
    try {
      const job = await queue.add(name, { runId: randomUUID(), orgId: randomUUID() }, { removeOnComplete: COMPLETED_RETENTION.postgres });
      const completedAt = await waitUntil(
        async () => ((await queue.getJobCounts('completed')).completed === 1 ? Date.now() : undefined),
        { timeoutMs: 10_000, intervalMs: 20, what: 'the job completed and kept' },
      );
      expect((await queue.getJob(job.id!))?.returnvalue).toBe('done');
      await waitUntil(async () => (await queue.getJobCounts('completed')).completed === 0, { timeoutMs: 10_000, intervalMs: 20, what: 'the completed job trimmed' });
      // Not before its keep time (the trim runs every 100 ms; the job finished at most one poll before completedAt).
      expect(Date.now() - completedAt).toBeGreaterThanOrEqual(300 - 50);
      expect(await queue.getJob(job.id!)).toBeUndefined();
    } finally {
      await worker.close();
      await queue.close();
    }
  });
});
