import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { JobTransport, JobState, LiveJob, QueueCounts } from '../../engine/ports/job-transport.js';
import { stageOrder } from '../../engine/dag.js';
import type { Catalog, StageName } from '../../engine/catalog.js';
import { createAddBatcher } from './add-batcher.js';
import { jobOptions, queuePrefix, type StageJobData } from './job-options.js';

export interface Producer extends JobTransport {
  queues: Record<StageName, Queue<StageJobData>>;
  close(): Promise<void>;
}

/** The queue side of the BullMQ driver: adds jobs, inspects and cancels them. */
export function createProducer(options: { catalog: Catalog; connection: Redis | Cluster; prefix: string; logger: Logger; cancelChannel: string }): Producer {
  const { catalog, connection, prefix, logger } = options;
  const queues = Object.fromEntries(
    stageOrder(catalog).map((stage) => {
      const queue = new Queue<StageJobData>(catalog[stage].queue, { connection, prefix: queuePrefix(prefix, catalog[stage].queue) });
      queue.on('error', (error) => logger.warn({ queue: queue.name, err: { message: error.message } }, 'queue error'));
      return [stage, queue];
    }),
  ) as Record<StageName, Queue<StageJobData>>;
  // Concurrent enqueues (accepts, finishing steps) share round trips to Redis.
  const adds = createAddBatcher(queues);

  return {
    queues,

    available: () => connection.status === 'ready',

    async enqueue(runId, orgId, stages, opts = {}) {
      await Promise.all(
        stages.map((stage) =>
          adds.add(stage, { runId, orgId, ...(opts.fanout?.length ? { fanout: [...opts.fanout] } : {}) }, jobOptions(catalog, runId, stage)),
        ),
      );
    },

    async inspect(jobs) {
      const live = new Map<string, LiveJob>();
      await Promise.all(
        jobs.map(async ({ jobId, stage }) => {
          const job = await queues[stage].getJob(jobId);
          if (!job) return;
          const state = (await job.getState()) as JobState;
          live.set(jobId, {
            state,
            progress: job.progress,
            attemptsMade: job.attemptsMade,
            ...(job.processedOn ? { processedOn: job.processedOn } : {}),
            ...(job.finishedOn ? { finishedOn: job.finishedOn } : {}),
            ...(job.failedReason ? { failedReason: job.failedReason } : {}),
          });
        }),
      );
      return live;
    },

    async cancel(jobs, reason) {
      const before = new Map<string, JobState | 'missing'>();
      await Promise.all(
        jobs.map(async ({ jobId, stage }) => {
          const job = await queues[stage].getJob(jobId);
          if (!job) {
            before.set(jobId, 'missing');
            return;
          }
          const state = (await job.getState()) as JobState;
          before.set(jobId, state);
          if (state === 'active') {
            // Whichever worker process holds it aborts it (see cancellation.ts).
            await connection.publish(options.cancelChannel, JSON.stringify({ jobId, reason }));
          } else if (state !== 'completed' && state !== 'failed') {
            try {
              await job.remove();
            } catch {
              // It became active in between: abort it where it runs.
              await connection.publish(options.cancelChannel, JSON.stringify({ jobId, reason }));
            }
          }
        }),
      );
      return before;
    },

    async discardFinished(jobs) {
      await Promise.all(
        jobs.map(async ({ jobId, stage }) => {
          const job = await queues[stage].getJob(jobId);
          const state = job ? await job.getState() : undefined;
          if (job && (state === 'completed' || state === 'failed')) await job.remove();
        }),
      );
    },

    async counts() {
      const entries = await Promise.all(
        stageOrder(catalog).map(async (stage) => {
          return [catalog[stage].queue, await queueCounts(queues[stage])] as const;
        }),
      );
      return Object.fromEntries(entries);
    },

    async close() {
      await Promise.all(Object.values(queues).map((queue) => queue.close()));
    },
  };
}

/** A queue's job counts by state, every state present. */
export async function queueCounts(queue: Queue): Promise<QueueCounts> {
  const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'paused', 'prioritized');
  return {
    waiting: c.waiting ?? 0,
    active: c.active ?? 0,
    delayed: c.delayed ?? 0,
    completed: c.completed ?? 0,
    failed: c.failed ?? 0,
    paused: c.paused ?? 0,
    prioritized: c.prioritized ?? 0,
  };
}
