import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { EventsService } from '../../../domain/chat/events.service.js';
import { AppError } from '../../../domain/errors.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, requireId } from '../../schemas/common.js';

const TicketBody = Type.Object(
  {
    batchId: Type.Optional(Type.String({ maxLength: 100 })),
    threadId: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);

export function registerCreateStreamTicket(app: App, events: EventsService): void {
  app.post(
    '/stream-tickets',
    {
      schema: {
        tags: ['chat'],
        summary: 'A short-lived, single-use ticket for one batch or thread event stream (`?ticket=`), so that a browser need not put its API token in a URL',
        body: TicketBody,
        response: {
          201: Type.Object({ ticket: Type.String(), expiresAt: Type.String(), url: Type.String() }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const body = (request.body ?? {}) as { batchId?: string; threadId?: string };
      if ((body.batchId === undefined) === (body.threadId === undefined)) {
        throw new AppError('invalid_request', 400, 'Give exactly one of batchId and threadId');
      }
      const target = body.batchId !== undefined ? { batchId: requireId(body.batchId, 'Batch') } : { threadId: requireId(body.threadId!, 'Thread') };
      const issued = await events.issueTicket(actor, target);
      const path = 'batchId' in target ? `batch/${target.batchId}` : `threads/${target.threadId}`;
      reply.code(201);
      return { ...issued, url: `/api/v1/chat/${path}/events?ticket=${encodeURIComponent(issued.ticket)}` };
    },
  );
}
