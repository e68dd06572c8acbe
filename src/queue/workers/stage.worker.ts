import { UnrecoverableError, Worker, type Job, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { safeErrorMessage } from '../../logger.js';
import { StageError } from '../../domain/errors.js';
import type { StageDefinitionData } from '../../engine/stage.js';
import { isPermanent, type StageRunner } from '../../domain/chat/stage-runner.js';
import type { StageName } from '../../engine/catalog.js';
import type { Progression } from '../progression.js';
import type { StageJobData } from '../pipeline.js';
import { observeProcessor, type JobObserver } from '../../monitoring/worker-observer.js';

export interface StageWorkerOptions {
  stage: StageName;
  definition: StageDefinitionData;
  connection: Redis;
  prefix: string;
  concurrency: number;
  limiter?: { max: number; duration: number };
  stalledIntervalMs: number;
  lockDurationMs: number;
  runner: StageRunner;
  progression: Progression;
  logger: Logger;
  /** Told when a job is taken and how it ended (metrics, the workers' heartbeat); the processor is unchanged. */
  metrics?: JobObserver;
}

/**
 * One BullMQ worker for one stage. The processor is thin: claim and run the step through the
 * shared stage runner, then move the run along the DAG. Permanent errors fail at once
 * (UnrecoverableError); a provider's 429 pauses the whole queue for its Retry-After.
 */
export function createStageWorker(options: StageWorkerOptions): Worker<StageJobData> {
  const { stage, definition, runner, progression, logger } = options;

  const process = async (job: Job<StageJobData>, _token?: string, signal?: AbortSignal): Promise<string> => {
    const { runId, orgId } = job.data;
    // The run's entry job enqueues the other stages that can start at once.
    if (Array.isArray(job.data.fanout)) await progression.enqueue(runId, orgId, job.data.fanout);
    else if (job.data.fanout) await progression.advance(runId, orgId, { exclude: stage });
    try {
      const outcome = await runner.execute(runId, stage, signal);
      // Done before (a re-delivered job after a crash): the crash may have come before the next
      // steps were enqueued, so move the run along again; enqueueing twice adds nothing.
      if (outcome.status === 'already_finished') {
        await progression.resume(runId, orgId);
        return outcome.status;
      }
      if (outcome.runFinished) await progression.afterRunFinished(outcome.threadId);
      else await progression.advance(runId, orgId, { finished: outcome.settled, states: outcome.states, threadId: outcome.threadId, messageSeq: outcome.messageSeq });
      return outcome.status;
    } catch (error) {
      if (signal?.aborted) {
        await runner.recordFailure(runId, stage, error, true);
        throw new UnrecoverableError(`cancelled: ${String(signal.reason ?? 'cancelled')}`);
      }
      const maxAttempts = job.opts.attempts ?? definition.attempts;
      const rateLimited = error instanceof StageError && error.code === 'rate_limited' && (error.retryAfterMs ?? 0) > 0;
      const final = isPermanent(error) || (!rateLimited && job.attemptsMade + 1 >= maxAttempts);
      const failure = await runner.recordFailure(runId, stage, error, final);
      if (final) {
        const message = await progression.afterFailure(runId, orgId, stage, failure);
        logger.warn({ stage, runId, jobId: job.id, code: (error as StageError).code }, message);
        throw new UnrecoverableError(safeErrorMessage(error));
      }
      if (rateLimited) {
        // Every worker of this queue, in every process, waits out the provider's Retry-After; the
        // job goes back to waiting without using an attempt.
        await worker.rateLimit((error as StageError).retryAfterMs!);
        throw Worker.RateLimitError();
      }
      // BullMQ keeps the message as the job's failure reason (Bull Board shows it): no values in it.
      throw error instanceof StageError ? error : new Error(safeErrorMessage(error));
    }
  };

  const workerOptions: WorkerOptions = {
    connection: options.connection,
    prefix: options.prefix,
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
