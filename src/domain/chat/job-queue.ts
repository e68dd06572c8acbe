import type { StageName } from '../stages/types.js';

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

/**
 * What the chat service needs of the queue system, so that domain code imports no queue library.
 * Implemented over BullMQ in src/queue/producer.ts.
 */
export interface JobQueue {
  /** Whether jobs can be enqueued right now (Redis reachable). */
  available(): boolean;
  /** Enqueues the given stages of a run; `fanout`: stages the worker of this job enqueues first. */
  enqueue(runId: string, orgId: string, stages: readonly StageName[], options?: { fanout?: readonly StageName[] }): Promise<void>;
  /** The live state of jobs still known to the queues, by job id. */
  inspect(jobs: ReadonlyArray<{ jobId: string; stage: StageName }>): Promise<Map<string, LiveJob>>;
  /** Removes waiting and delayed jobs and aborts active ones wherever they run; answers each job's state before. */
  cancel(jobs: ReadonlyArray<{ jobId: string; stage: StageName }>, reason: string): Promise<Map<string, JobState | 'missing'>>;
  /** Removes finished (completed or failed) jobs so that the same job id can be added again. */
  discardFinished(jobs: ReadonlyArray<{ jobId: string; stage: StageName }>): Promise<void>;
  counts(): Promise<Record<string, QueueCounts>>;
}
