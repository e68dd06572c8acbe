import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { JobsService } from '../../../domain/chat/jobs.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { JobIds } from './job-status.js';

export function registerCancelJobs(app: App, jobs: JobsService): void {
  app.post(
    '/jobs/cancel',
    {
      schema: {
        tags: ['jobs'],
        summary: "Cancel jobs: waiting and delayed ones are removed, active ones aborted; their run becomes cancelled",
        body: Type.Object({ jobIds: JobIds, reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            results: Type.Array(Type.Object({ jobId: Type.String(), cancelled: Type.Boolean(), previousState: Type.String() })),
            summary: Type.Record(Type.String(), Type.Integer()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => jobs.cancelJobs(actorOf(request), request.body.jobIds, request.body.reason ?? 'cancelled by request'),
  );
}
