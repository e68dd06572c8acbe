import { Type } from '@sinclair/typebox';
import type { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { App } from '../../types.js';
import type { Config } from '../../../config.js';
import { AppError } from '../../../domain/errors.js';
import type { StageName } from '../../../engine/catalog.js';
import { readQueueStatus } from '../../../queue/autoscaling.js';
import type { StageJobData } from '../../../adapters/bullmq/job-options.js';
import { requireOperator } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';

const Decision = Type.Object({ at: Type.String(), processId: Type.String(), from: Type.Integer(), to: Type.Integer(), reason: Type.String() });

const QueueStatus = Type.Object({
  name: Type.String(),
  stage: Type.String(),
  counts: Type.Object({
    waiting: Type.Integer(),
    active: Type.Integer(),
    delayed: Type.Integer(),
    failed: Type.Integer(),
    completed: Type.Integer(),
    paused: Type.Integer(),
    prioritized: Type.Integer(),
  }),
  paused: Type.Boolean(),
  concurrency: Type.Object({
    current: Type.Integer({ description: 'Summed over the worker processes that publish their state' }),
    min: Type.Integer(),
    max: Type.Integer(),
    configured: Type.Object({ min: Type.Integer(), max: Type.Integer(), start: Type.Integer(), autoscale: Type.Boolean() }),
    processes: Type.Array(
      Type.Object({
        processId: Type.String(),
        host: Type.String(),
        pid: Type.Integer(),
        current: Type.Integer(),
        min: Type.Integer(),
        max: Type.Integer(),
        autoscale: Type.Boolean(),
        updatedAt: Type.String(),
      }),
    ),
  }),
  rateLimit: Type.Object({
    limiter: Type.Union([Type.Object({ max: Type.Integer(), duration: Type.Integer() }), Type.Null()]),
    limited: Type.Boolean(),
    ttlMs: Type.Integer(),
    globalConcurrency: Type.Union([Type.Integer(), Type.Null()]),
  }),
  workersSeen: Type.Integer(),
  lastDecisions: Type.Array(Decision),
});

/**
 * Per queue: counts, paused, worker concurrency (every process, with host names and pids),
 * rate-limit state, scaling decisions. System-wide and about processes: operators only.
 */
export function registerQueueStatus(
  app: App,
  deps: { config: Readonly<Config>; queues: Record<StageName, Queue<StageJobData>>; redis: Redis | Cluster; available: () => boolean },
): void {
  app.get(
    '/system/queue-status',
    {
      schema: {
        tags: ['system'],
        summary: 'Queues, worker concurrency and auto-scaling decisions (system operators)',
        response: {
          200: Type.Object({ timestamp: Type.String(), queues: Type.Array(QueueStatus) }),
          ...errorResponses,
          503: Type.Ref('ErrorResponse'),
        },
      },
    },
    async (request) => {
      requireOperator(request);
      const unavailable = () => new AppError('queue_unavailable', 503, 'The queue system is unreachable; messages are processed in-process');
      if (!deps.available()) throw unavailable();
      try {
        return await readQueueStatus(deps);
      } catch (error) {
        // Redis went away during the reads (or timed out): the same 503; anything else is a bug.
        const message = error instanceof Error ? error.message : String(error);
        if (deps.available() && !/connection|stream|timed out|ECONNREFUSED|ECONNRESET/i.test(message)) throw error;
        request.log.warn({ err: { message } }, 'queue status: Redis | Cluster unreachable');
        throw unavailable();
      }
    },
  );
}
