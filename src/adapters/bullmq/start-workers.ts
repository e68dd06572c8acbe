import type { Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { QueuedDriver } from '../../engine/drivers/queued.js';
import type { StageName } from '../../engine/catalog.js';
import type { StageJobData } from './job-options.js';
import { createStageWorker } from './stage.worker.js';
import type { JobObserver } from '../../monitoring/worker-observer.js';

export interface StartedWorkers {
  workers: Map<StageName, Worker<StageJobData>>;
  /** Stops fetching, lets active jobs finish for up to `timeoutMs`, then leaves the rest to another worker. */
  close(timeoutMs: number): Promise<void>;
}

export function startWorkers(deps: {
  config: Readonly<Config>;
  stages: readonly StageName[];
  connection: Redis | Cluster;
  consume: QueuedDriver<StageName>;
  logger: Logger;
  /** Passed to every stage worker (see StageWorkerOptions.metrics). */
  metrics?: JobObserver;
}): StartedWorkers {
  const { config, logger } = deps;
  const workers = new Map<StageName, Worker<StageJobData>>();
  for (const stage of deps.stages) {
    // Limits protect third-party APIs: the offline LLM provider calls nobody and is not limited.
    const limits = config.queue.limiters[stage];
    const limiter = limits?.enforced ? { max: limits.max, duration: limits.duration } : undefined;
    const worker = createStageWorker({
      stage,
      definition: config.catalog[stage],
      connection: deps.connection,
      prefix: config.queue.prefix,
      concurrency: config.queue.concurrency[stage],
      ...(limiter ? { limiter } : {}),
      stalledIntervalMs: config.queue.stalledIntervalMs,
      lockDurationMs: config.queue.lockDurationMs,
      consume: deps.consume,
      logger,
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
    });
    workers.set(stage, worker);
    logger.info(`✓ ${config.catalog[stage].queue} worker initialized (concurrency ${config.queue.concurrency[stage]})`);
  }
  return {
    workers,
    async close(timeoutMs) {
      const all = [...workers.values()];
      let timer: NodeJS.Timeout | undefined;
      const graceful = Promise.all(all.map((worker) => worker.close())).then(() => 'done' as const);
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const outcome = await Promise.race([graceful, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        // BullMQ's close(true) would wait for the close already under way, so stop waiting here:
        // the caller closes the connections, the jobs' locks lapse and another worker takes them.
        logger.warn(`active jobs still running after ${timeoutMs} ms: leaving them to another worker`);
        graceful.catch(() => undefined);
      }
    },
  };
}
