import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { StageName } from '../../engine/catalog.js';
import { createFairClock, createFairPriorities } from '../../engine/fairness.js';
import type { FairnessConfig } from '../../fairness.config.js';
import type { StageJobData } from './job-options.js';

/** BullMQ's priorities: 1 (first) to 2^21 − 1; 0 is "no priority", taken before every prioritized job. */
const MAX_PRIORITY = 2_097_151;
/** One priority step: tags 10 ms apart are told apart, and an epoch lasts about 87 minutes. */
const RESOLUTION_MS = 10;
const PAGE = 500;
/** How old the known head of a queue may be before it is read again (in the background). */
const HEAD_TTL_MS = 50;

export interface FairOrder {
  /** The priority of the next job of `orgId` in `stage`, and the epoch it is counted in (kept in the job's data). */
  next(stage: StageName, orgId: string): { priority: number; fairEpoch: number };
}

/**
 * The engine's fair rule (src/engine/fairness.ts) over BullMQ's job priorities, which work the
 * same on Redis and on BullMQ's PostgreSQL backend: each job's priority is its start tag, so every
 * stage's queue takes organizations in turn, by weight. The queue's next job tells the clock how
 * far behind the queue is (see FairClock). When the epoch changes, the jobs still
 * waiting or delayed with an older epoch are rebased in the background, once per process.
 */
export function createFairOrder(options: {
  settings: FairnessConfig;
  queues: Record<StageName, Queue<StageJobData>>;
  logger: Logger;
  now?: () => number;
}): FairOrder & { rebasing(): Promise<void> } {
  const { settings, queues, logger } = options;
  const priorities = createFairPriorities({ resolutionMs: RESOLUTION_MS, maxPriority: MAX_PRIORITY, ...(options.now ? { now: options.now } : {}) });
  const clock = createFairClock({
    jobCostMs: settings.jobCostMs,
    maxLeadMs: Math.min(settings.maxLeadMs, priorities.maxLeadMs),
    weightOf: (orgId) => settings.weights[orgId.toLowerCase()] ?? 1,
    ...(options.now ? { now: options.now } : {}),
  });
  const now = options.now ?? Date.now;
  // The start tag of each queue's next job, read at most every HEAD_TTL_MS and never awaited: a
  // tag a little old is lower than the true head's, which only puts a newcomer further forward.
  const heads = new Map<StageName, { tag: number | undefined; readAt: number; reading: boolean }>();
  function headOf(stage: StageName): number | undefined {
    const known = heads.get(stage) ?? { tag: undefined, readAt: Number.NEGATIVE_INFINITY, reading: false };
    heads.set(stage, known);
    if (!known.reading && now() - known.readAt >= HEAD_TTL_MS) {
      known.reading = true;
      queues[stage]
        .getJobs(['prioritized'], 0, 0, true)
        .then(([job]) => {
          const epoch = job?.data.fairEpoch;
          known.tag = job && typeof epoch === 'number' && job.priority ? priorities.tagOf(job.priority, epoch) : undefined;
        })
        .catch(() => undefined)
        .finally(() => {
          known.readAt = now();
          known.reading = false;
        });
    }
    return known.tag;
  }
  // Unset until the first job: a process started after an epoch change rebases what it finds.
  let rebasedTo: number | undefined;
  let rebase: Promise<void> = Promise.resolve();

  /** One walk over the queue's waiting and delayed jobs; answers how many it rebased. */
  async function rebasePass(queue: Queue<StageJobData>, to: number): Promise<number> {
    let moved = 0;
    for (let start = 0; ; start += PAGE) {
      const jobs = await queue.getJobs(['prioritized', 'delayed'], start, start + PAGE - 1, true);
      for (const job of jobs) {
        const from = job.data.fairEpoch;
        if (typeof from !== 'number' || from >= to || !job.priority) continue;
        try {
          await job.changePriority({ priority: priorities.rebase(job.priority, from, to) });
          await job.updateData({ ...job.data, fairEpoch: to });
          moved++;
        } catch {
          // Taken by a worker or removed in between: nothing left to rebase.
        }
      }
      if (jobs.length < PAGE) return moved;
    }
  }

  /** Rebased jobs move within the set while it is walked, so walk again until a walk finds none (a few at most). */
  async function rebaseQueue(queue: Queue<StageJobData>, to: number): Promise<number> {
    let total = 0;
    for (let pass = 0; pass < 5; pass++) {
      const moved = await rebasePass(queue, to);
      total += moved;
      if (moved === 0) break;
    }
    return total;
  }

  return {
    next(stage, orgId) {
      const { priority, epoch } = priorities.priorityOf(clock.tag(stage, orgId, headOf(stage)));
      if (rebasedTo === undefined || epoch > rebasedTo) {
        rebasedTo = epoch;
        rebase = rebase
          .then(() => Promise.all(Object.values(queues).map((queue) => rebaseQueue(queue, epoch))))
          .then((moved) => {
            const total = moved.reduce((a, b) => a + b, 0);
            if (total > 0) logger.info({ epoch, jobs: total }, 'fair priorities rebased to a new epoch');
          })
          .catch((error: Error) => logger.warn({ err: { message: error.message } }, 'could not rebase fair priorities'));
      }
      return { priority, fairEpoch: epoch };
    },
    rebasing: () => rebase,
  };
}
