import { DelayedError, RateLimitError, UnrecoverableError, type Job } from 'bullmq';
import type { StageName } from '../engine/catalog.js';

/**
 * How one processing of a job ended: `completed`; `skipped` (the step or run was already finished:
 * nothing done); `retry` (failed, BullMQ will try again); `failed` (failed for good);
 * `cancelled`; `rate_limited` (a provider's 429 paused the queue; the job waits again without
 * using an attempt).
 */
export type JobOutcome = 'completed' | 'skipped' | 'retry' | 'failed' | 'cancelled' | 'rate_limited';

/** What a stage worker reports, for metrics and the workers' heartbeat. */
export interface JobObserver {
  /** A worker took a job. `waitMs`: time from enqueue to this first start (absent on later attempts). */
  started(stage: StageName, info: { waitMs?: number }): void;
  settled(stage: StageName, outcome: JobOutcome, durationMs: number): void;
}

type Processor<D, R> = (job: Job<D>, token?: string, signal?: AbortSignal) => Promise<R>;

/**
 * Wraps a stage worker's processor to report each job's start and end; the processor itself is
 * called unchanged and whatever it returns or throws passes through. An observer that throws does
 * not affect the job.
 */
export function observeProcessor<D, R>(stage: StageName, processor: Processor<D, R>, observer: JobObserver): Processor<D, R> {
  return async (job, token, signal) => {
    const started = performance.now();
    safely(() => observer.started(stage, waitOf(job)));
    try {
      const result = await processor(job, token, signal);
      safely(() => observer.settled(stage, result === 'already_finished' ? 'skipped' : 'completed', performance.now() - started));
      return result;
    } catch (error) {
      safely(() => observer.settled(stage, outcomeOf(job, error), performance.now() - started));
      throw error;
    }
  };
}

function waitOf(job: Job): { waitMs?: number } {
  // Only the first start is measured: a retried job's timestamp is still its first enqueue.
  if (job.attemptsMade > 0 || (job.attemptsStarted ?? 1) > 1 || !job.processedOn) return {};
  return { waitMs: Math.max(0, job.processedOn - job.timestamp - (job.opts.delay ?? 0)) };
}

function outcomeOf(job: Job, error: unknown): JobOutcome {
  // A 429 puts the job back delayed (DelayedError) for its organization's Retry-After.
  if (error instanceof RateLimitError || error instanceof DelayedError) return 'rate_limited';
  if (error instanceof UnrecoverableError) return error.message.startsWith('cancelled') ? 'cancelled' : 'failed';
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1) ? 'failed' : 'retry';
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // Metrics never break a job.
  }
}
