import type { JobsOptions } from 'bullmq';
import { stageOrder } from '../../engine/dag.js';
import { jobIdFor } from '../../engine/job-id.js';
import type { Catalog, StageName } from '../../engine/catalog.js';

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

/**
 * The BullMQ prefix of one queue. A hash-tag prefix (`{name}`, what the config makes of
 * QUEUE_PREFIX on a Redis Cluster) gives each queue a tag of its own, `{name:queue}`: every key of
 * a queue lands on one slot (BullMQ's scripts touch several), and the queues spread over the nodes.
 */
export function queuePrefix(prefix: string, queue: string): string {
  const tag = /^\{(.+)\}$/.exec(prefix);
  return tag ? `{${tag[1]}:${queue}}` : prefix;
}

/** Every queue of the catalog, in stage order. */
export function queueNames(catalog: Catalog): string[] {
  return stageOrder(catalog).map((stage) => catalog[stage].queue);
}

export function stageOfQueue(catalog: Catalog, queue: string): StageName | undefined {
  return stageOrder(catalog).find((stage) => catalog[stage].queue === queue);
}

/** Parses `--queues a,b` (queue or stage names) into stages; all of them by default. */
export function selectStages(catalog: Catalog, names: readonly string[] | undefined): StageName[] {
  const order = stageOrder(catalog);
  if (!names || names.length === 0) return [...order];
  return names.map((name) => {
    const stage = order.find((s) => s === name || catalog[s].queue === name);
    if (!stage) throw new Error(`unknown queue: ${name} (known: ${queueNames(catalog).join(', ')})`);
    return stage;
  });
}

/**
 * BullMQ options of a stage's job, from the stage's definition. Finished jobs are removed
 * (results live in PostgreSQL); a bounded number stay for inspection.
 */
export function jobOptions(catalog: Catalog, runId: string, stage: StageName): JobsOptions {
  const definition = catalog[stage];
  return {
    jobId: jobIdFor(runId, stage),
    attempts: definition.attempts,
    backoff: { type: 'exponential', delay: definition.backoff.baseDelayMs },
    removeOnComplete: { age: 3_600, count: 1_000 },
    removeOnFail: { age: 24 * 3_600, count: 5_000 },
  };
}
