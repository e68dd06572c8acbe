import type { Logger } from 'pino';
import type { Container } from '../container.js';
import type { StageName } from '../engine/catalog.js';
import { cancelChannel, subscribeToCancellations } from '../adapters/bullmq/cancellation.js';
import { describeRedis } from '../adapters/redis/connections.js';
import { createReconciler } from '../engine/reconciler.js';
import { queueNames } from '../adapters/bullmq/job-options.js';
import { advisoryLead, RECONCILER_LOCK_ID } from '../adapters/postgres/advisory-lock.js';
import { startWorkers, type StartedWorkers } from '../adapters/bullmq/start-workers.js';
import { QUEUE_SCHEMA } from '../adapters/bullmq/backend.js';
import { startAutoscaling, type Autoscaling } from './autoscaling.js';
import { createFleetState } from './fleet-state.js';
import { createAlertsService, type AlertsService } from '../domain/monitoring/alerts.service.js';
import { createStalledJobs } from '../domain/monitoring/stalled-jobs.js';
import { createRocketReachClient } from '../domain/stages/rocketreach/rocketreach.client.js';

export interface QueueSystem {
  workers: StartedWorkers | undefined;
  /** The concurrency controllers of this process's workers (src/queue/autoscaling.ts). */
  autoscaling: Autoscaling | undefined;
  /** The alert evaluator (src/domain/monitoring/alerts.service.ts): scheduled in every process, one pass at a time. */
  alerts: AlertsService;
  /** Stops workers (bounded by `timeoutMs`) and the reconciler, and closes their connections. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Starts the queue side of a process: checks the transport (Redis or PostgreSQL), starts the
 * workers of the given stages (none for the `api` role), the cancellation listener and the
 * reconciler. Redis being down does not stop the start: the API serves in degraded mode and the
 * workers connect when Redis returns.
 */
export async function startQueueSystem(container: Container, stages: readonly StageName[], logger: Logger): Promise<QueueSystem> {
  const { config, coordination } = container;
  logger.info('Initializing queue system...');
  if (container.redis) {
    const redis = container.redis;
    if (await coordination.ready(3_000)) {
      logger.info(`Connected to ${describeRedis(config.redis)}`);
      await setGlobalConcurrencies(container);
    } else {
      logger.warn('Redis is unreachable: serving in degraded mode (the pipeline runs in-process) until it returns');
      redis.once('ready', () => {
        logger.info('Redis is back: new messages go to the queues again');
        setGlobalConcurrencies(container).catch(() => undefined);
      });
    }
  } else {
    logger.info(`Queues on PostgreSQL (schema ${QUEUE_SCHEMA}; LISTEN/NOTIFY wakes the workers)`);
    await setGlobalConcurrencies(container);
  }

  let workers: StartedWorkers | undefined;
  let unsubscribe: Promise<(() => Promise<void>) | undefined> | undefined;
  if (stages.length > 0) {
    workers = startWorkers({
      config,
      stages,
      backend: container.queueBackend,
      consume: container.engine.queued,
      logger,
      // Job metrics, and the heartbeat the health check reads to tell a consuming worker from a stuck one.
      metrics: container.monitoring.jobObserver(container.heartbeat),
    });
    container.monitoring.trackWorkers(workers.workers);
    // Subscribing waits for the store; the start does not.
    unsubscribe = subscribeToCancellations(coordination, cancelChannel(config.queue.prefix), [...workers.workers.values()], logger).catch(() => undefined);
  }
  const reconciler = createReconciler({
    catalog: config.catalog,
    engine: container.engine,
    runs: container.repositories.runs,
    queue: container.producer,
    lead: advisoryLead(container.database.pool, RECONCILER_LOCK_ID),
    afterMs: config.queue.reconcileAfterMs,
    logger,
  });
  // In every role: an api process alone (no workers anywhere, or Redis gone) still re-drives runs.
  reconciler.start(config.queue.reconcileIntervalMs);
  const autoscaling = workers
    ? startAutoscaling({ config, workers: workers.workers, queues: container.producer.queues, fleet: createFleetState(coordination, config.queue.prefix), logger })
    : undefined;
  // Alerts: stalls seen by this process's workers are counted in the coordination store for whichever process
  // evaluates; every process runs the schedule and a PostgreSQL advisory lock picks one per pass.
  const stalledJobs = createStalledJobs({ coordination, prefix: config.queue.prefix });
  for (const worker of workers?.workers.values() ?? []) worker.on('stalled', (jobId) => void stalledJobs.record(worker.name, jobId));
  const rr = config.rocketreach;
  const alerts = createAlertsService({
    repository: container.repositories.alerts,
    queues: queueNames(config.catalog),
    queueHealth: async () => {
      const report = await container.health.detailed();
      if (!report.queues) throw new Error(report.queuesError ?? 'queues unavailable');
      return report.queues;
    },
    coordination,
    stalled: stalledJobs,
    rocketreach: rr.apiKey ? createRocketReachClient({ apiKey: rr.apiKey, baseUrl: rr.baseUrl, deadlineMs: rr.deadlineMs }) : undefined,
    config: config.alerts,
    prefix: config.queue.prefix,
    logger,
  });
  alerts.start();
  logger.info(`Queue system ready (${stages.length ? stages.map((s) => config.catalog[s].queue).join(', ') : 'producer only'})`);

  return {
    workers,
    autoscaling,
    alerts,
    async close(timeoutMs) {
      await alerts.stop();
      await autoscaling?.stop();
      await reconciler.stop();
      await workers?.close(timeoutMs);
      if (workers) container.monitoring.untrackWorkers(workers.workers);
      await (await unsubscribe)?.();
    },
  };
}

/** A stage's global concurrency (its provider's limit across every process) is a setting of its queue (in Redis or PostgreSQL). */
async function setGlobalConcurrencies(container: Container): Promise<void> {
  const { limiters } = container.config.queue;
  await Promise.all(
    (Object.keys(limiters) as StageName[]).map(async (stage) => {
      const global = limiters[stage]?.globalConcurrency;
      if (global !== undefined) await container.producer.queues[stage].setGlobalConcurrency(global);
    }),
  );
}
