import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { MonitoringRepository } from '../adapters/postgres/repositories/monitoring.repository.js';
import {
  judgeWorkers,
  overallStatus,
  type ComponentCheck,
  type HealthStatus,
  type QueueObservation,
  type WorkersCheck,
} from '../domain/monitoring/health.js';
import { stageOrder } from '../engine/dag.js';
import { queueNames } from '../adapters/bullmq/job-options.js';
import { waitUntilReady } from '../adapters/redis/connections.js';
import type { Producer } from '../adapters/bullmq/transport.js';
import type { Heartbeat } from './heartbeat.js';
import type { EventLoopDelay, Monitoring } from './monitoring.js';
import { QUEUE_STATES, type QueueStateCounts } from './prometheus.js';

const APP_VERSION: string = (() => {
  try {
    return String(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();


export interface HealthReport {
  status: HealthStatus;
  timestamp: string;
  checks: { database: ComponentCheck; redis: ComponentCheck; workers: WorkersCheck };
}

export interface QueueDetail {
  counts: QueueStateCounts;
  oldestWaitingAgeMs: number | null;
  /** Time since any process last took a job from the queue (heartbeat), null if none within the hour. */
  lastFetchAgeMs: number | null;
  /** Processes that took a job from the queue within the stale threshold. */
  consumingProcesses: number;
  /** Worker connections BullMQ sees on the queue, across processes (null when Redis refuses CLIENT LIST). */
  workersSeen: number | null;
  paused: boolean;
  /** Time left on a rate-limit pause (e.g. a provider's Retry-After), 0 when none. */
  rateLimitTtlMs: number;
  globalConcurrency: number | null;
}

export interface DetailedHealthReport extends HealthReport {
  uptimeSeconds: number;
  process: { pid: number; startedAt: string; uptimeSeconds: number };
  versions: { node: string; app: string; postgresql: string | null; redis: string | null };
  database: ComponentCheck & { pool: { total: number; idle: number; waiting: number; max: number } };
  redis: ComponentCheck;
  queues: Record<string, QueueDetail> | null;
  queuesError?: string;
  workers: {
    /** This process's workers and their current concurrency. */
    thisProcess: Record<string, { concurrency: number; running: boolean; paused: boolean }>;
    /** Workers BullMQ sees per queue, across every process. */
    seen: Record<string, number | null>;
  };
  eventLoop: EventLoopDelay;
  /** process.memoryUsage(), in bytes. */
  memory: NodeJS.MemoryUsage;
}

/** Rejects with `timeout` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** A reason that says what went wrong without repeating a driver's message (which may name hosts or users). */
function reasonOf(error: unknown): string {
  if (error instanceof TimeoutError) return 'timeout';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
  return 'unavailable';
}

async function timed(check: () => Promise<unknown>, timeoutMs: number): Promise<ComponentCheck> {
  const started = performance.now();
  try {
    await withTimeout(check(), timeoutMs);
    return { status: 'healthy', latencyMs: ms(performance.now() - started) };
  } catch (error) {
    return { status: 'unhealthy', latencyMs: ms(performance.now() - started), error: reasonOf(error) };
  }
}

const ms = (value: number) => Math.round(value * 10) / 10;

/**
 * The health of the server as a load balancer (basic) and an operator (detailed) see it: real
 * round trips to PostgreSQL and Redis, and whether each queue with old waiting jobs is being
 * consumed, judged from the workers' heartbeats (see heartbeat.ts). Each check has its own timeout;
 * a failing check reports itself unhealthy — it never hides its error.
 */
export function createHealthService(deps: {
  config: Readonly<Config>;
  repository: MonitoringRepository;
  redis: Redis | Cluster;
  producer: Producer;
  heartbeat: Heartbeat;
  monitoring: Monitoring;
  now?: () => number;
}) {
  const { config, repository, redis, producer, heartbeat, monitoring } = deps;
  const QUEUES = queueNames(config.catalog);
  const now = deps.now ?? Date.now;
  const timeoutMs = config.monitoring.healthCheckTimeoutMs;
  const staleAfterMs = config.monitoring.workerStaleMs;
  const queues = stageOrder(config.catalog).map((stage) => ({ name: config.catalog[stage].queue, queue: producer.queues[stage] }));

  /** Ready now, or within the timeout when the connection is still being made (a fresh start); no wait while Redis is down. */
  async function redisReady(): Promise<boolean> {
    if (redis.status === 'ready') return true;
    if (redis.status !== 'connecting' && redis.status !== 'connect' && redis.status !== 'wait') return false;
    return waitUntilReady(redis, timeoutMs).then(
      () => true,
      () => false,
    );
  }

  async function oldestWaitingAt(queue: (typeof queues)[number]['queue']): Promise<number | null> {
    const jobs = await queue.getJobs(['wait', 'paused'], 0, 0, true);
    const times = jobs.filter((job) => job && typeof job.timestamp === 'number').map((job) => job.timestamp + (job.opts.delay ?? 0));
    return times.length ? Math.min(...times) : null;
  }

  async function observeQueues(): Promise<{ observations: QueueObservation[]; fetches: Map<string, Array<{ process: string; at: number }>> }> {
    const fetches = await heartbeat.read(QUEUES);
    const observations = await Promise.all(
      queues.map(async ({ name, queue }): Promise<QueueObservation> => {
        const [waiting, oldestAt] = await Promise.all([queue.getJobCountByTypes('wait', 'paused', 'prioritized'), oldestWaitingAt(queue)]);
        const at = now();
        const newest = fetches.get(name)?.[0]?.at;
        return {
          queue: name,
          waiting,
          oldestWaitingAgeMs: waiting > 0 && oldestAt !== null ? Math.max(0, at - oldestAt) : null,
          lastFetchAgeMs: newest === undefined ? null : Math.max(0, at - newest),
        };
      }),
    );
    return { observations, fetches };
  }

  async function workersCheck(): Promise<WorkersCheck> {
    if (!(await redisReady())) return { status: 'degraded', staleAfterMs, stale: [], queues: {}, error: 'redis_unavailable' };
    try {
      const { observations } = await withTimeout(observeQueues(), timeoutMs);
      return judgeWorkers(observations, staleAfterMs);
    } catch (error) {
      return { status: 'degraded', staleAfterMs, stale: [], queues: {}, error: reasonOf(error) };
    }
  }

  async function basic(): Promise<HealthReport> {
    const [database, redisCheck, workers] = await Promise.all([
      timed(() => repository.ping(), timeoutMs),
      timed(async () => {
        await redisReady();
        return redis.ping();
      }, timeoutMs),
      workersCheck(),
    ]);
    // Redis down makes the whole degraded, not unhealthy: the API then serves in-process (see overallStatus).
    const checks = { database, redis: redisCheck, workers };
    return { status: overallStatus(checks), timestamp: new Date(now()).toISOString(), checks };
  }

  async function queueDetails(): Promise<Record<string, QueueDetail>> {
    const { observations, fetches } = await observeQueues();
    const entries = await Promise.all(
      queues.map(async ({ name, queue }, i): Promise<[string, QueueDetail]> => {
        const [counts, workersSeen, paused, rateLimitTtl, globalConcurrency] = await Promise.all([
          queue.getJobCounts(...QUEUE_STATES),
          queue.getWorkersCount().catch(() => null),
          queue.isPaused(),
          queue.getRateLimitTtl(),
          queue.getGlobalConcurrency(),
        ]);
        const observation = observations[i]!;
        const at = now();
        return [
          name,
          {
            counts: Object.fromEntries(QUEUE_STATES.map((state) => [state, counts[state] ?? 0])),
            oldestWaitingAgeMs: observation.oldestWaitingAgeMs,
            lastFetchAgeMs: observation.lastFetchAgeMs,
            consumingProcesses: (fetches.get(name) ?? []).filter((f) => at - f.at <= staleAfterMs).length,
            workersSeen,
            paused,
            rateLimitTtlMs: Math.max(0, rateLimitTtl),
            globalConcurrency,
          },
        ];
      }),
    );
    return Object.fromEntries(entries);
  }

  async function detailed(): Promise<DetailedHealthReport> {
    const ready = await redisReady();
    const [report, postgresVersion, redisVersion, queueResult] = await Promise.all([
      basic(),
      withTimeout(repository.serverVersion(), timeoutMs).catch(() => null),
      ready ? withTimeout(redis.info('server'), timeoutMs).then((info) => /redis_version:(\S+)/.exec(info)?.[1] ?? null).catch(() => null) : null,
      ready
        ? withTimeout(queueDetails(), timeoutMs * 2).then(
            (value) => ({ value }),
            (error: unknown) => ({ error: reasonOf(error) }),
          )
        : { error: 'redis_unavailable' },
    ]);
    const thisProcess = Object.fromEntries(
      [...monitoring.localWorkers].map(([queue, worker]) => [queue, { concurrency: worker.concurrency, running: worker.isRunning(), paused: worker.isPaused() }]),
    );
    const queueDetail = 'value' in queueResult ? queueResult.value : null;
    const uptimeSeconds = Math.round(process.uptime());
    return {
      ...report,
      uptimeSeconds,
      process: { pid: process.pid, startedAt: monitoring.startedAt.toISOString(), uptimeSeconds },
      versions: { node: process.version, app: APP_VERSION, postgresql: postgresVersion, redis: redisVersion },
      database: { ...report.checks.database, pool: repository.poolUsage() },
      redis: report.checks.redis,
      queues: queueDetail,
      ...('error' in queueResult ? { queuesError: queueResult.error } : {}),
      workers: {
        thisProcess,
        seen: Object.fromEntries(QUEUES.map((queue) => [queue, queueDetail?.[queue]?.workersSeen ?? null])),
      },
      eventLoop: monitoring.eventLoop.read(),
      memory: process.memoryUsage(),
    };
  }

  return {
    basic,
    detailed,
    /** Job counts per queue for the Prometheus scrape (the caller bounds it with its own timeout). */
    async queueCounts(): Promise<Record<string, QueueStateCounts>> {
      if (!(await redisReady())) throw new Error('redis_unavailable');
      const entries = await Promise.all(queues.map(async ({ name, queue }) => [name, await queue.getJobCounts(...QUEUE_STATES)] as const));
      return Object.fromEntries(entries);
    },
  };
}

export type HealthService = ReturnType<typeof createHealthService>;
