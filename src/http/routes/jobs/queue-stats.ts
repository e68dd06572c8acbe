import { Type, type Static } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { JobsService } from '../../../domain/chat/jobs.service.js';
import type { MetricsReporter } from '../../../domain/monitoring/metrics-report.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, timeRangeQuery } from '../../schemas/common.js';

const Counts = Type.Object({
  waiting: Type.Integer(),
  active: Type.Integer(),
  delayed: Type.Integer(),
  completed: Type.Integer(),
  failed: Type.Integer(),
  paused: Type.Integer(),
  prioritized: Type.Integer(),
});

const Query = timeRangeQuery('Runs accepted this far back');

const Percentiles = Type.Object({ p50: Type.Union([Type.Number(), Type.Null()]), p95: Type.Union([Type.Number(), Type.Null()]) });

const Organization = Type.Object({
  orgId: Type.String(),
  timeRange: Type.String(),
  runs: Type.Object({ byStatus: Type.Record(Type.String(), Type.Integer()), total: Type.Integer() }),
  stages: Type.Record(
    Type.String(),
    Type.Object({
      stage: Type.String(),
      completed: Type.Integer(),
      failed: Type.Integer(),
      cancelled: Type.Integer(),
      open: Type.Integer(),
      retries: Type.Integer(),
      processingMs: Percentiles,
      waitMs: Percentiles,
    }),
  ),
});

/**
 * Everyone in an organization sees its own figures (runs by state, steps per stage with their
 * timings, from PostgreSQL). The queues' job counts are every tenant's together: operators only.
 */
export function registerQueueStats(app: App, jobs: JobsService, metrics: MetricsReporter): void {
  app.get(
    '/jobs/queue-stats',
    {
      schema: {
        tags: ['jobs'],
        summary: "The organization's runs and steps by state; for operators also the system-wide job counts per queue",
        querystring: Query,
        response: {
          200: Type.Object({
            scope: Type.Union([Type.Literal('organization'), Type.Literal('system')]),
            organization: Organization,
            queues: Type.Optional(Type.Record(Type.String(), Counts)),
            totals: Type.Optional(Counts),
            available: Type.Optional(Type.Boolean()),
          }),
          ...errorResponses,
          503: Type.Ref('ErrorResponse'),
        },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const { timeRange = '1h' } = request.query as Static<typeof Query>;
      reply.header('cache-control', 'no-store');
      if (!actor.operator) return { scope: 'organization' as const, organization: await metrics.organization(actor.orgId, timeRange) };
      const [system, organization] = await Promise.all([jobs.queueStats(), metrics.organization(actor.orgId, timeRange)]);
      return { scope: 'system' as const, organization, ...system };
    },
  );
}
