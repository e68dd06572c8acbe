import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stageOrder } from '../../src/engine/dag.js';
import { CATALOG } from '../../src/engine/catalog.js';
import type { StageName } from '../../src/engine/catalog.js';
import { createAddBatcher } from '../../src/adapters/bullmq/add-batcher.js';
import { jobOptions, type StageJobData } from '../../src/adapters/bullmq/job-options.js';
import { REDIS_URL } from '../support/processes.js';

const prefix = `test-batcher-${randomBytes(4).toString('hex')}`;
let connection: Redis;
let queues: Record<StageName, Queue<StageJobData>>;
/** Each addBulk call, as the number of jobs it carried, per queue. */
const bulkCalls: Array<{ stage: StageName; size: number }> = [];

beforeAll(async () => {
  connection = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  queues = Object.fromEntries(
    stageOrder(CATALOG).map((stage) => {
      const queue = new Queue<StageJobData>(CATALOG[stage].queue, { connection, prefix });
      const addBulk = queue.addBulk.bind(queue);
      queue.addBulk = (jobs) => {
        bulkCalls.push({ stage, size: jobs.length });
        return addBulk(jobs);
      };
      return [stage, queue];
    }),
  ) as Record<StageName, Queue<StageJobData>>;
});

afterAll(async () => {
  for (const queue of Object.values(queues)) await queue.obliterate({ force: true });
  await Promise.all(Object.values(queues).map((queue) => queue.close()));
  const keys = await connection.keys(`${prefix}:*`);
  if (keys.length) await connection.del(...keys);
  await connection.quit();
});

function job(stage: StageName) {
  const runId = randomUUID();
  return { stage, data: { runId, orgId: randomUUID() }, opts: jobOptions(CATALOG, runId, stage) };
}

describe('adding jobs in batches', () => {
  it('adds the jobs of one turn of the event loop with one addBulk per queue', async () => {
    bulkCalls.length = 0;
    const batcher = createAddBatcher(queues);
    const jobs = [...Array.from({ length: 30 }, () => job('intent')), ...Array.from({ length: 10 }, () => job('rag'))];
    await Promise.all(jobs.map((j) => batcher.add(j.stage, j.data, j.opts)));
    expect(bulkCalls.sort((a, b) => a.stage.localeCompare(b.stage))).toEqual([
      { stage: 'intent', size: 30 },
      { stage: 'rag', size: 10 },
    ]);
    for (const j of jobs) expect((await queues[j.stage].getJob(j.opts.jobId!))?.data).toEqual(j.data);
  });

  it('collects the adds made while a batch is in flight into the next one', async () => {
    bulkCalls.length = 0;
    const batcher = createAddBatcher(queues);
    const one = job('security');
    const first = batcher.add(one.stage, one.data, one.opts);
    // The first batch leaves on the next turn; these arrive while it is in flight.
    await new Promise((resolve) => setImmediate(resolve));
    const later = Array.from({ length: 20 }, () => job('security'));
    await Promise.all([first, ...later.map((j) => batcher.add(j.stage, j.data, j.opts))]);
    expect(bulkCalls).toEqual([
      { stage: 'security', size: 1 },
      { stage: 'security', size: 20 },
    ]);
  });

  it('adds a job id once, however often it is added', async () => {
    const batcher = createAddBatcher(queues);
    const j = job('openai');
    await Promise.all([batcher.add(j.stage, j.data, j.opts), batcher.add(j.stage, j.data, j.opts)]);
    await batcher.add(j.stage, j.data, j.opts);
    expect((await queues.openai.getJobCounts('waiting')).waiting).toBe(1);
  });

  it('adds each job on its own where a bulk add costs more than single ones (bulk: false)', async () => {
    bulkCalls.length = 0;
    const batcher = createAddBatcher(queues, { bulk: false });
    const jobs = Array.from({ length: 5 }, () => job('intent'));
    await Promise.all(jobs.map((j) => batcher.add(j.stage, j.data, j.opts)));
    expect(bulkCalls).toEqual([]);
    for (const j of jobs) expect((await queues.intent.getJob(j.opts.jobId!))?.data).toEqual(j.data);
  });

  it('rejects the adds of a batch that failed, and only those', async () => {
    const failing = { ...queues, rocketreach: { addBulk: () => Promise.reject(new Error('redis is gone')) } as unknown as Queue<StageJobData> };
    const batcher = createAddBatcher(failing);
    const good = job('intent');
    const bad = job('rocketreach');
    const outcomes = await Promise.allSettled([batcher.add(good.stage, good.data, good.opts), batcher.add(bad.stage, bad.data, bad.opts)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected']);
    expect(await queues.intent.getJob(good.opts.jobId!)).toBeDefined();
  });
});
