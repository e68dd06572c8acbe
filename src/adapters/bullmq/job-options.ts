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
  /** With fairness on: the epoch the job's priority is counted in (see fair-order.ts). */
  fairEpoch?: number;
  /** Attempts of the step made before its job was added (its first ran in the run's entry job). */
  attemptsBefore?: number;
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
 * BullMQ options of a stage's job, from the stage's definition, and its place in the fair order
 * (`priority`) when fairness is on. Finished jobs are removed (results live in PostgreSQL); a
 * bounded number stay for inspection.
 */
/**
 * How long BullMQ keeps a completed job (PostgreSQL keeps each step's own record either way). In
 * Redis the kept jobs are a sorted set, trimmed cheaply by count. BullMQ's PostgreSQL backend
 * trims on each completion with a statement that reads the queue's kept jobs — by count a scan
 * and sort of all of them, by age one its partial index cannot serve (4–5 ms and ~600 buffers a
 * completion with a few thousand jobs) — so there BullMQ keeps them all, and each process trims
 * them by age, every few seconds, in one statement a queue (backend.ts).
 */
export const COMPLETED_RETENTION = {
  redis: { age: 3_600, count: 1_000 },
  postgres: false,
} as const satisfies Record<'redis' | 'postgres', JobsOptions['removeOnComplete']>;

export function jobOptions(
  catalog: Catalog,
  runId: string,
  stage: StageName,
  place: { priority?: number | undefined; retry?: { attemptsMade: number; delayMs: number } | undefined } = {},
  completedRetention: JobsOptions['removeOnComplete'] = COMPLETED_RETENTION.redis,
): JobsOptions {
  const definition = catalog[stage];
  const { priority, retry } = place;
  return {
    jobId: jobIdFor(runId, stage),
    ...(priority ? { priority } : {}),
    attempts: Math.max(1, definition.attempts - (retry?.attemptsMade ?? 0)),
    ...(retry && retry.delayMs > 0 ? { delay: retry.delayMs } : {}),
    backoff: { type: 'exponential', delay: definition.backoff.baseDelayMs },
    removeOnComplete: completedRetention,
    removeOnFail: { age: 24 * 3_600, count: 5_000 },
  };
}
