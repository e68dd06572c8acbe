import { UnrecoverableError, Worker, type Job, type WorkerOptions } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { safeErrorMessage } from '../../logger.js';
import { StageError } from '../../domain/errors.js';
import type { StageDefinitionData } from '../../engine/stage.js';
import type { QueuedDriver } from '../../engine/drivers/queued.js';
import type { StageName } from '../../engine/catalog.js';
import { queuePrefix, type StageJobData } from './job-options.js';
import { observeProcessor, type JobObserver } from '../../monitoring/worker-observer.js';

export interface StageWorkerOptions {
  stage: StageName;
  definition: StageDefinitionData;
  connection: Redis | Cluster;
  prefix: string;
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
 * (UnrecoverableError); a provider's 429 pauses the whole queue for its Retry-After.
 */
export function createStageWorker(options: StageWorkerOptions): Worker<StageJobData> {
  const { stage, definition, consume, logger } = options;

  const process = async (job: Job<StageJobData>, _token?: string, signal?: AbortSignal): Promise<string> => {
    const { runId, orgId, fanout } = job.data;
    const verdict = await consume({ runId, orgId, stage, attemptsMade: job.attemptsMade, fanout }, signal);
    switch (verdict.kind) {
      case 'done':
        return verdict.status;
      case 'aborted':
        throw new UnrecoverableError(`cancelled: ${String(verdict.reason ?? 'cancelled')}`);
      case 'final':
        logger.warn({ stage, runId, jobId: job.id, code: (verdict.error as StageError).code }, verdict.message);
        throw new UnrecoverableError(safeErrorMessage(verdict.error));
      case 'pause':
        // Every worker of this queue, in every process, waits out the provider's Retry-After; the
        // job goes back to waiting without using an attempt.
        await worker.rateLimit(verdict.ms);
        throw Worker.RateLimitError();
      case 'retry':
        // BullMQ keeps the message as the job's failure reason (Bull Board shows it): no values in it.
        throw verdict.error instanceof StageError ? verdict.error : new Error(safeErrorMessage(verdict.error));
    }
  };

  const workerOptions: WorkerOptions = {
    connection: options.connection,
    prefix: queuePrefix(options.prefix, definition.queue),
    concurrency: options.concurrency,
    stalledInterval: options.stalledIntervalMs,
    lockDuration: options.lockDurationMs,
    maxStalledCount: 2,
    autorun: true,
    ...(options.limiter ? { limiter: options.limiter } : {}),
  };
  const processor = options.metrics ? observeProcessor(stage, process, options.metrics) : process;
  const worker: Worker<StageJobData> = new Worker<StageJobData>(definition.queue, processor, workerOptions);
  worker.on('error', (error) => logger.warn({ queue: definition.queue, err: { message: error.message } }, 'worker error'));
  worker.on('failed', (job, error) => {
    if (job && job.attemptsMade < (job.opts.attempts ?? 1) && !(error instanceof UnrecoverableError)) {
      logger.info({ stage, jobId: job.id, attempt: job.attemptsMade }, 'stage attempt failed, will retry');
    }
  });
  return worker;
}
