import { Type, type Static } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { HealthReport as Report, HealthService } from '../../../monitoring/health.service.js';

const Status = Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')]);

export const ComponentCheck = Type.Object({
  status: Status,
  latencyMs: Type.Number(),
  error: Type.Optional(Type.String({ description: 'A short reason such as `timeout` or `ECONNREFUSED`' })),
});

export const WorkersCheck = Type.Object({
  status: Status,
  staleAfterMs: Type.Integer({ description: 'HEALTH_WORKER_STALE_MS' }),
  stale: Type.Array(Type.String(), { description: 'Queues with old waiting jobs and no worker that took a job recently' }),
  queues: Type.Record(
    Type.String(),
    Type.Object({
      status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded')]),
      reason: Type.Optional(Type.Literal('not_consuming')),
      waiting: Type.Integer(),
      oldestWaitingAgeMs: Type.Union([Type.Number(), Type.Null()]),
      lastFetchAgeMs: Type.Union([Type.Number(), Type.Null()], { description: 'Time since any worker process took a job from the queue' }),
    }),
  ),
  error: Type.Optional(Type.String()),
});

const Degraded = Type.Union([Type.Literal('healthy'), Type.Literal('degraded')]);

/** Backpressure: `shedding` while messages are refused over the backlog limits (BACKLOG_MAX_*). */
export const BacklogCheck = Type.Object({
  status: Degraded,
  shedding: Type.Boolean({ description: 'A message was refused (429 backlog_full, 503 overloaded) in the last minute, or a limit is reached now' }),
  shed: Type.Object({ organization: Type.Integer(), overall: Type.Integer() }, { description: 'Refusals by this process since it started' }),
  lastShedAt: Type.Union([Type.String(), Type.Null()]),
  open: Type.Integer({ description: 'Open runs across the system at the last count' }),
  organizationsAtLimit: Type.Integer(),
  limits: Type.Object({ maxPerOrg: Type.Integer(), maxTotal: Type.Integer() }),
  drainRatePerSecond: Type.Union([Type.Number(), Type.Null()]),
  serviceTimeMs: Type.Number(),
  countAgeMs: Type.Union([Type.Number(), Type.Null()]),
});

/** The full report, with each queue's figures: part of the detailed (operator-only) health. */
export const HealthReport = Type.Object({
  status: Status,
  timestamp: Type.String(),
  checks: Type.Object({ database: ComponentCheck, redis: ComponentCheck, workers: WorkersCheck, backlog: BacklogCheck }),
});

const PublicWorkersCheck = Type.Object({
  status: Status,
  staleAfterMs: Type.Integer({ description: 'HEALTH_WORKER_STALE_MS' }),
  stale: Type.Array(Type.String(), { description: 'Queues with old waiting jobs and no worker that took a job recently' }),
  queues: Type.Record(
    Type.String(),
    Type.Object({ status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded')]), reason: Type.Optional(Type.Literal('not_consuming')) }),
  ),
  error: Type.Optional(Type.String()),
});

const PublicHealthReport = Type.Object({
  status: Status,
  timestamp: Type.String(),
  checks: Type.Object({
    database: ComponentCheck,
    redis: ComponentCheck,
    workers: PublicWorkersCheck,
    backlog: Type.Object({ status: Degraded, shedding: Type.Boolean({ description: 'Messages are being refused over the backlog limits' }) }),
  }),
});

/** What anyone may see: each component's and queue's state, none of the system-wide queue figures. */
export function publicHealthView(report: Report): Static<typeof PublicHealthReport> {
  const { workers, backlog } = report.checks;
  const queues = Object.fromEntries(
    Object.entries(workers.queues).map(([name, queue]) => [name, { status: queue.status, ...(queue.reason ? { reason: queue.reason } : {}) }]),
  );
  return { ...report, checks: { ...report.checks, workers: { ...workers, queues }, backlog: { status: backlog.status, shedding: backlog.shedding } } };
}

/**
 * For load balancers: no auth, nothing secret and no figures (queue depths and ages are
 * system-wide, for operators on the detailed health). 200 healthy or degraded (Redis down: the API
 * serves in-process; a queue not consumed), 503 unhealthy (PostgreSQL unreachable).
 */
export function registerHealth(app: App, health: HealthService): void {
  app.get(
    '/system/health',
    {
      config: { public: true },
      schema: {
        tags: ['system'],
        summary: 'Health of the server and its dependencies (no authentication)',
        security: [],
        response: { 200: PublicHealthReport, 503: PublicHealthReport },
      },
    },
    async (_request, reply) => {
      const report = await health.basic();
      return reply
        .status(report.status === 'unhealthy' ? 503 : 200)
        .header('cache-control', 'no-store')
        .send(publicHealthView(report));
    },
  );
}
