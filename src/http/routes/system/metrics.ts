import { Type, type Static } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { MetricsReporter } from '../../../domain/monitoring/metrics-report.js';
import { requireAdminOrOperator } from '../../plugins/auth.js';
import { errorResponses, timeRangeQuery } from '../../schemas/common.js';

const Query = timeRangeQuery('How far back');

const Percentiles = Type.Object({ p50: Type.Union([Type.Number(), Type.Null()]), p95: Type.Union([Type.Number(), Type.Null()]) });
const Figures = {
  requests: Type.Integer(),
  requestsPerMinute: Type.Number(),
  latencyMs: Type.Object({
    p50: Type.Union([Type.Number(), Type.Null()]),
    p95: Type.Union([Type.Number(), Type.Null()]),
    p99: Type.Union([Type.Number(), Type.Null()]),
    mean: Type.Union([Type.Number(), Type.Null()]),
    max: Type.Union([Type.Number(), Type.Null()]),
  }),
  serverErrors: Type.Integer(),
  clientErrors: Type.Integer(),
  errorRate: Type.Number({ description: '5xx / requests' }),
};

const Report = Type.Object({
  timeRange: Type.String(),
  generatedAt: Type.String(),
  from: Type.String(),
  http: Type.Optional(Type.Object({
    scope: Type.Literal('process'),
    note: Type.String(),
    windowSeconds: Type.Integer(),
    totals: Type.Object(Figures),
    routes: Type.Array(Type.Object({ route: Type.String(), method: Type.String(), path: Type.String(), ...Figures })),
  })),
  providers: Type.Optional(Type.Object({
    scope: Type.Literal('process'),
    note: Type.String(),
    byProvider: Type.Record(
      Type.String(),
      Type.Object({
        calls: Type.Integer(),
        ok: Type.Integer(),
        errors: Type.Integer(),
        rateLimited: Type.Integer(),
        promptTokens: Type.Number(),
        completionTokens: Type.Number(),
        errorRate: Type.Number(),
        rateLimitedRate: Type.Number(),
      }),
    ),
  })),
  stages: Type.Object({
    scope: Type.Literal('organization'),
    orgId: Type.String(),
    note: Type.String(),
    byStage: Type.Record(
      Type.String(),
      Type.Object({
        stage: Type.String(),
        completed: Type.Integer(),
        failed: Type.Integer(),
        cancelled: Type.Integer(),
        open: Type.Integer(),
        retries: Type.Integer(),
        completedPerMinute: Type.Number(),
        failedPerMinute: Type.Number(),
        processingMs: Percentiles,
        waitMs: Percentiles,
        series: Type.Array(Type.Object({ minute: Type.String(), completed: Type.Integer(), failed: Type.Integer() })),
      }),
    ),
  }),
  tokens: Type.Object({
    scope: Type.Literal('organization'),
    orgId: Type.String(),
    byProvider: Type.Record(
      Type.String(),
      Type.Object({ replies: Type.Integer(), promptTokens: Type.Number(), completionTokens: Type.Number(), totalTokens: Type.Number() }),
    ),
    totalTokens: Type.Number(),
  }),
  runs: Type.Object({ scope: Type.Literal('organization'), orgId: Type.String(), byStatus: Type.Record(Type.String(), Type.Integer()), total: Type.Integer() }),
});

/**
 * JSON metrics for organization admins and operators. Stage, token and run figures come from
 * PostgreSQL for the caller's organization only; HTTP (per route) and provider figures are this
 * process's view of every tenant's traffic and are shown to operators only.
 */
export function registerMetrics(app: App, metrics: MetricsReporter): void {
  app.get(
    '/system/metrics',
    {
      schema: {
        tags: ['system'],
        summary: "The organization's stage, token and run metrics over a time range (admins); operators also get this process's HTTP and provider figures",
        querystring: Query,
        response: { 200: Report, ...errorResponses },
      },
    },
    async (request) => {
      const actor = requireAdminOrOperator(request);
      const { timeRange = '1h' } = request.query as Static<typeof Query>;
      return metrics.report(actor.orgId, timeRange, { systemWide: actor.operator });
    },
  );
}
