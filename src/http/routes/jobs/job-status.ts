import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { JobsService } from '../../../domain/chat/jobs.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';

export const JobIds = Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 100 });

export function registerJobStatus(app: App, jobs: JobsService): void {
  app.post(
    '/jobs/status',
    {
      schema: {
        tags: ['jobs'],
        summary: "Status of jobs by id (≤100); another organization's ids answer not_found",
        body: Type.Object({ jobIds: JobIds }, { additionalProperties: false }),
        response: { 200: Type.Object({ jobs: Type.Array(Type.Record(Type.String(), Type.Unknown())), summary: Type.Record(Type.String(), Type.Integer()) }), ...errorResponses },
      },
    },
    async (request) => jobs.jobStatus(actorOf(request), request.body.jobIds),
  );
}
