import type { JobsOptions } from 'bullmq';
import { stageOrder } from '../engine/dag.js';
import { CATALOG } from '../engine/catalog.js';
import { jobIdFor } from '../engine/job-id.js';
import type { StageName } from '../engine/catalog.js';

/** What every job carries: ids only. Workers load the content from PostgreSQL. */
export interface StageJobData {
  runId: string;
  orgId: string;
  /**
   * Set on a run's entry job: the other stages its worker enqueues first (the run's other root
   * stages). `true`, from earlier versions, means: those the run's step states say are ready.
   */
  fanout?: StageName[] | true;
}

export const QUEUE_NAMES: readonly string[] = stageOrder(CATALOG).map((stage) => CATALOG[stage].queue);

export function stageOfQueue(queue: string): StageName | undefined {
  return stageOrder(CATALOG).find((stage) => CATALOG[stage].queue === queue);
}

/**
 * BullMQ options of a stage's job, from the pipeline definition. Finished jobs are removed
 * (results live in PostgreSQL); a bounded number stay for inspection.
 */
export function jobOptions(runId: string, stage: StageName): JobsOptions {
  const definition = CATALOG[stage];
  return {
    jobId: jobIdFor(runId, stage),
    attempts: definition.attempts,
    backoff: { type: 'exponential', delay: definition.backoff.baseDelayMs },
    removeOnComplete: { age: 3_600, count: 1_000 },
    removeOnFail: { age: 24 * 3_600, count: 5_000 },
  };
}
