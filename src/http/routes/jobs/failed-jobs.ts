import { Type, type Static } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { FailedJobsStore } from '../../../domain/monitoring/failed-jobs-store.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';

const Query = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 20 })) },
  { additionalProperties: false },
);

const Timestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

const FailedJob = Type.Object({
  jobId: Type.String({ description: '`<batchId>.<stage>`' }),
  batchId: Type.String(),
  threadId: Type.String(),
  stage: Type.String(),
  queue: Type.String(),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  attempts: Type.Integer(),
  maxAttempts: Type.Integer(),
  startedAt: Timestamp,
  finishedAt: Timestamp,
});

/** The organization's recently failed pipeline steps, newest first, from PostgreSQL. */
export function registerFailedJobs(app: App, failedJobs: FailedJobsStore): void {
  app.get(
    '/jobs/failed',
    {
      schema: {
        tags: ['jobs'],
        summary: "The organization's most recently failed jobs (pipeline steps), newest first",
        querystring: Query,
        response: { 200: Type.Object({ jobs: Type.Array(FailedJob) }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const { limit = 20 } = request.query as Static<typeof Query>;
      const rows = await failedJobs.recent(actor.orgId, limit);
      reply.header('cache-control', 'no-store');
      return {
        jobs: rows.map((row) => ({
          ...row,
          startedAt: row.startedAt?.toISOString() ?? null,
          finishedAt: row.finishedAt?.toISOString() ?? null,
        })),
      };
    },
  );
}
