import { DelayedError, UnrecoverableError, type Job, type Worker } from 'bullmq';
import type { Logger } from 'pino';
import { safeErrorMessage } from '../../logger.js';
import { StageError } from '../../domain/errors.js';
import type { StageDefinitionData } from '../../engine/stage.js';
import type { QueuedDriver } from '../../engine/drivers/queued.js';
import type { StageName } from '../../engine/catalog.js';
import type { StageJobData } from './job-options.js';
import type { QueueBackend, StageWorkerOptions as BackendWorkerOptions } from './backend.js';
import { observeProcessor, type JobObserver } from '../../monitoring/worker-observer.js';

export interface StageWorkerOptions {
  stage: StageName;
  definition: StageDefinitionData;
  /** Where the queues are (Redis or PostgreSQL). */
  backend: QueueBackend;
  concurrency: number;
  limiter?: { max: number; duration: number };
  stalledIntervalMs: number;
  lockDurationMs: number;
  /** The engine's queue driver: runs the step and moves the run on. */
  consume: QueuedDriver<StageName>;
  logger: Logger;
  /** Told when a job is taken and how it ended (metrics, the workers' heartbeat); the processor is unchanged. */
  metrics?: JobObserver;
}

/**
 * One BullMQ worker for one stage. The processor is thin: the engine's queue driver runs the step
 * and moves the run along the DAG; its verdict becomes BullMQ's. Permanent errors fail at once
 * (UnrecoverableError); a provider's 429 puts the job back for its Retry-After, and the engine
 * holds that organization's other jobs of the stage meanwhile — the queue goes on for the others.
 */
export function createStageWorker(options: StageWorkerOptions): Worker<StageJobData> {
  const { stage, definition, consume, logger } = options;

  const process = async (job: Job<StageJobData>, token?: string, signal?: AbortSignal): Promise<string> => {
    const { runId, orgId, fanout, attemptsBefore = 0 } = job.data;
    const verdict = await consume({ runId, orgId, stage, attemptsMade: attemptsBefore + job.attemptsMade, fanout }, signal);
    switch (verdict.kind) {
      case 'done':
        return verdict.status;
      case 'aborted':
        throw new UnrecoverableError(`cancelled: ${String(verdict.reason ?? 'cancelled')}`);
      case 'final':
        logger.warn({ stage, runId, jobId: job.id, code: (verdict.error as StageError).code }, verdict.message);
        throw new UnrecoverableError(safeErrorMessage(verdict.error));
      case 'pause':
        // Only this organization waits out the provider's Retry-After: the job goes back, delayed,
        // without using an attempt, and keeps its place (its priority) for when it returns.
        await job.moveToDelayed(Date.now() + verdict.ms, token);
        throw new DelayedError();
      case 'retry':
        // BullMQ keeps the message as the job's failure reason (Bull Board shows it): no values in it.
        throw verdict.error instanceof StageError ? verdict.error : new Error(safeErrorMessage(verdict.error));
    }
  };

  const workerOptions: BackendWorkerOptions = {
    concurrency: options.concurrency,
    stalledInterval: options.stalledIntervalMs,
    lockDuration: options.lockDurationMs,
    maxStalledCount: 2,
    autorun: true,
    ...(options.limiter ? { limiter: options.limiter } : {}),
  };
  const processor = options.metrics ? observeProcessor(stage, process, options.metrics) : process;
  const worker: Worker<StageJobData> = options.backend.worker(definition.queue, processor, workerOptions);
  worker.on('error', (error) => logger.warn({ queue: definition.queue, err: { message: error.message } }, 'worker error'));
  worker.on('failed', (job, error) => {
    if (job && job.attemptsMade < (job.opts.attempts ?? 1) && !(error instanceof UnrecoverableError)) {
      logger.info({ stage, jobId: job.id, attempt: job.attemptsMade }, 'stage attempt failed, will retry');
    }
  });
  return worker;
}
