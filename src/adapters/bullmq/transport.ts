import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { Coordination } from '../../engine/ports/coordination.js';
import type { JobTransport, JobState, LiveJob, QueueCounts } from '../../engine/ports/job-transport.js';
import { stageOrder } from '../../engine/dag.js';
import type { Catalog, StageName } from '../../engine/catalog.js';
import { createAddBatcher } from './add-batcher.js';
import { COMPLETED_RETENTION, jobOptions, type StageJobData } from './job-options.js';
import type { QueueBackend } from './backend.js';
import { createFairOrder } from './fair-order.js';
import type { FairnessConfig } from '../../fairness.config.js';

export interface Producer extends JobTransport {
  queues: Record<StageName, Queue<StageJobData>>;
  close(): Promise<void>;
}

/**
 * The queue side of the BullMQ driver: adds jobs, inspects and cancels them, on whichever backend
 * carries the queues. An active job is aborted through the coordination port's signals, which
 * reach the process whose worker holds it. With `fairness` on, every job gets its place in the
 * fair order across organizations (fair-order.ts).
 */
export function createProducer(options: {
  catalog: Catalog;
  backend: QueueBackend;
  coordination: Coordination;
  logger: Logger;
  cancelChannel: string;
  fairness?: FairnessConfig;
  now?: () => number;
}): Producer {
  const { catalog, backend, coordination, logger } = options;
  const signalCancel = (jobId: string, reason: string) => coordination.publish(options.cancelChannel, JSON.stringify({ jobId, reason }));
  const queues = Object.fromEntries(
    stageOrder(catalog).map((stage) => {
      const queue = backend.queue(catalog[stage].queue);
      queue.on('error', (error) => logger.warn({ queue: queue.name, err: { message: error.message } }, 'queue error'));
      return [stage, queue];
    }),
  ) as Record<StageName, Queue<StageJobData>>;
  // Concurrent enqueues (accepts, finishing steps) share round trips.
  const adds = createAddBatcher(queues, { bulk: backend.name === 'redis' });
  const fair = options.fairness?.enabled
    ? createFairOrder({ settings: options.fairness, queues, logger, ...(options.now ? { now: options.now } : {}) })
    : undefined;

  return {
    queues,

    available: () => backend.available(),

    async enqueue(runId, orgId, stages, opts = {}) {
      await Promise.all(
        stages.map((stage) => {
          const place = fair?.next(stage, orgId);
          const data: StageJobData = {
            runId,
            orgId,
            ...(opts.fanout?.length ? { fanout: [...opts.fanout] } : {}),
            ...(place ? { fairEpoch: place.fairEpoch } : {}),
            ...(opts.retry ? { attemptsBefore: opts.retry.attemptsMade } : {}),
          };
          return adds.add(stage, data, jobOptions(catalog, runId, stage, { priority: place?.priority, retry: opts.retry }, COMPLETED_RETENTION[backend.name]));
        }),
      );
    },

    async inspect(jobs) {
      const live = new Map<string, LiveJob>();
      await Promise.all(
        jobs.map(async ({ jobId, stage }) => {
          const job = await queues[stage].getJob(jobId);
          if (!job) return;
          const state = publicState(await job.getState());
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
          const state = publicState(await job.getState());
          before.set(jobId, state);
          if (state === 'active') {
            // Whichever worker process holds it aborts it (see cancellation.ts).
            await signalCancel(jobId, reason);
          } else if (state !== 'completed' && state !== 'failed') {
            try {
              await job.remove();
            } catch {
              // It became active in between: abort it where it runs.
              await signalCancel(jobId, reason);
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

/** A job's state as clients see it: one waiting in its fair place (BullMQ's `prioritized`) is waiting. */
function publicState(state: string): JobState {
  return (state === 'prioritized' ? 'waiting' : state) as JobState;
}

/**
 * A queue's job counts by state, every state present. BullMQ 6 keeps the jobs of a paused queue in
 * its waiting list; they are counted as `paused` while it is paused, as BullMQ 5 did.
 */
export async function queueCounts(queue: Queue): Promise<QueueCounts> {
  const [c, paused] = await Promise.all([queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized'), queue.isPaused()]);
  const waiting = c.waiting ?? 0;
  return {
    waiting: paused ? 0 : waiting,
    active: c.active ?? 0,
    delayed: c.delayed ?? 0,
    completed: c.completed ?? 0,
    failed: c.failed ?? 0,
    paused: paused ? waiting : 0,
    prioritized: c.prioritized ?? 0,
  };
}
