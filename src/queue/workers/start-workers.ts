import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { stageOrder } from '../../engine/dag.js';
import { CATALOG } from '../../engine/catalog.js';
import type { StageRunner } from '../../domain/chat/stage-runner.js';
import type { StageName } from '../../engine/catalog.js';
import type { Progression } from '../progression.js';
import type { StageJobData } from '../pipeline.js';
import { createStageWorker } from './stage.worker.js';
import type { JobObserver } from '../../monitoring/worker-observer.js';

/** Which stage each worker factory serves. Start-up refuses a pipeline stage with no worker. */
const WORKER_FACTORIES: Record<StageName, typeof createStageWorker> = {
  intent: createStageWorker,
  security: createStageWorker,
  rag: createStageWorker,
  rocketreach: createStageWorker,
  openai: createStageWorker,
};

export function checkRegistry(registry: Partial<Record<StageName, unknown>> = WORKER_FACTORIES): void {
  const missing = stageOrder(CATALOG).filter((stage) => !registry[stage]);
  const unknown = Object.keys(registry).filter((stage) => !stageOrder(CATALOG).includes(stage as StageName));
  if (missing.length || unknown.length) {
    throw new Error(`pipeline and workers disagree: no worker for [${missing.join(', ')}], no stage for [${unknown.join(', ')}]`);
  }
}

/** Parses `--queues a,b` (queue or stage names) into stages; all of them by default. */
export function selectStages(names: readonly string[] | undefined): StageName[] {
  if (!names || names.length === 0) return [...stageOrder(CATALOG)];
  return names.map((name) => {
    const stage = stageOrder(CATALOG).find((s) => s === name || CATALOG[s].queue === name);
    if (!stage) throw new Error(`unknown queue: ${name} (known: ${stageOrder(CATALOG).map((s) => CATALOG[s].queue).join(', ')})`);
    return stage;
  });
}

export interface StartedWorkers {
  workers: Map<StageName, Worker<StageJobData>>;
  /** Stops fetching, lets active jobs finish for up to `timeoutMs`, then leaves the rest to another worker. */
  close(timeoutMs: number): Promise<void>;
}

export function startWorkers(deps: {
  config: Readonly<Config>;
  stages: readonly StageName[];
  connection: Redis;
  runner: StageRunner;
  progression: Progression;
  logger: Logger;
  /** Passed to every stage worker (see StageWorkerOptions.metrics). */
  metrics?: JobObserver;
}): StartedWorkers {
  checkRegistry();
  const { config, logger } = deps;
  const workers = new Map<StageName, Worker<StageJobData>>();
  for (const stage of deps.stages) {
    // Limits protect third-party APIs: the offline LLM provider calls nobody and is not limited.
    const limiter =
      stage === 'openai'
        ? config.openai.apiKey
          ? config.queue.openaiLimiter
          : undefined
        : stage === 'rocketreach'
          ? config.queue.rocketreachLimiter
          : undefined;
    const worker = WORKER_FACTORIES[stage]({
      stage,
      connection: deps.connection,
      prefix: config.queue.prefix,
      concurrency: config.queue.concurrency[stage],
      ...(limiter ? { limiter } : {}),
      stalledIntervalMs: config.queue.stalledIntervalMs,
      lockDurationMs: config.queue.lockDurationMs,
      runner: deps.runner,
      progression: deps.progression,
      logger,
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
    });
    workers.set(stage, worker);
    logger.info(`✓ ${CATALOG[stage].queue} worker initialized (concurrency ${config.queue.concurrency[stage]})`);
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
