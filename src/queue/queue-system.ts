import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Container } from '../container.js';
import { PIPELINE } from '../domain/pipeline.js';
import type { StageName } from '../domain/stages/types.js';
import { cancelChannel, subscribeToCancellations } from './cancellation.js';
import { closeRedis, createRedisConnection, waitUntilReady } from './connections.js';
import { createReconciler } from './reconciler.js';
import { startWorkers, type StartedWorkers } from './workers/start-workers.js';

export interface QueueSystem {
  workers: StartedWorkers | undefined;
  /** Stops workers (bounded by `timeoutMs`) and the reconciler, and closes their connections. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Starts the queue side of a process: checks Redis, starts the workers of the given stages (none
 * for the `api` role), the cancellation listener and the reconciler. Redis being down does not
 * stop the start: the API serves in degraded mode and the workers connect when Redis returns.
 */
export async function startQueueSystem(container: Container, stages: readonly StageName[], logger: Logger): Promise<QueueSystem> {
  const { config } = container;
  logger.info('Initializing queue system...');
  try {
    await waitUntilReady(container.redis, 3_000);
    logger.info(`Connected to Redis (${new URL(config.redis.url).host})`);
    await container.producer.queues.rocketreach.setGlobalConcurrency(config.queue.rocketreachMaxConcurrent);
  } catch {
    logger.warn('Redis is unreachable: serving in degraded mode (the pipeline runs in-process) until it returns');
    container.redis.once('ready', () => {
      logger.info('Redis is back: new messages go to the queues again');
      container.producer.queues.rocketreach.setGlobalConcurrency(config.queue.rocketreachMaxConcurrent).catch(() => undefined);
    });
  }

  let workerConnection: Redis | undefined;
  let subscriber: Redis | undefined;
  let workers: StartedWorkers | undefined;
  if (stages.length > 0) {
    workerConnection = createRedisConnection(config.redis.url, 'worker', logger);
    workers = startWorkers({
      config,
      stages,
      connection: workerConnection,
      runner: container.runner,
      progression: container.progression,
      logger,
    });
    subscriber = createRedisConnection(config.redis.url, 'subscriber', logger);
    // Subscribing waits for Redis; the start does not.
    void subscribeToCancellations(subscriber, cancelChannel(config.queue.prefix), [...workers.workers.values()], logger).catch(() => undefined);
  }
  const reconciler = createReconciler({
    pool: container.database.pool,
    runs: container.repositories.runs,
    queue: container.producer,
    inline: container.inline,
    afterMs: config.queue.reconcileAfterMs,
    logger,
  });
  if (workers) reconciler.start(config.queue.reconcileIntervalMs);
  logger.info(`Queue system ready (${stages.length ? stages.map((s) => PIPELINE[s].queue).join(', ') : 'producer only'})`);

  return {
    workers,
    async close(timeoutMs) {
      await reconciler.stop();
      await workers?.close(timeoutMs);
      if (subscriber) await closeRedis(subscriber);
      if (workerConnection) await closeRedis(workerConnection);
    },
  };
}
