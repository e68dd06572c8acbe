import type { StageName } from '../stage-names.js';

export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'prioritized' | 'waiting-children' | 'unknown';

export interface LiveJob {
  state: JobState;
  progress?: unknown;
  attemptsMade: number;
  processedOn?: number;
  finishedOn?: number;
  failedReason?: string;
}

export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
  paused: number;
  prioritized: number;
}

export type JobRef<S extends string = StageName> = { jobId: string; stage: S };

export interface EnqueueOptions<S extends string> {
  fanout?: readonly S[];
  retry?: { attemptsMade: number; delayMs: number };
}

/**
 * What the engine needs of the queues that carry step jobs (ids only), so that it imports no
 * queue library. Implemented over BullMQ in src/adapters/bullmq/transport.ts.
 */
export interface JobTransport<S extends string = StageName> {
  /** Whether jobs can be added right now (Redis reachable). */
  available(): boolean;
  /**
   * Adds the given steps of a run; `fanout`: stages the worker of this job adds first; `retry`:
   * the steps' attempts go on from `attemptsMade` made elsewhere (see drivers/queued.ts), the
   * next after `delayMs`.
   */
  enqueue(runId: string, orgId: string, stages: readonly S[], options?: EnqueueOptions<S>): Promise<void>;
  /** The live state of jobs still known to the queues, by job id. */
  inspect(jobs: ReadonlyArray<JobRef<S>>): Promise<Map<string, LiveJob>>;
  /** Removes waiting and delayed jobs and aborts active ones wherever they run; answers each job's state before. */
  cancel(jobs: ReadonlyArray<JobRef<S>>, reason: string): Promise<Map<string, JobState | 'missing'>>;
  /** Removes finished (completed or failed) jobs so that the same job id can be added again. */
  discardFinished(jobs: ReadonlyArray<JobRef<S>>): Promise<void>;
  counts(): Promise<Record<string, QueueCounts>>;
}
