import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import type { EventsService } from '../../../domain/chat/events.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { BatchDocumentSchema } from '../../schemas/chat.js';

const ResultsQuery = Type.Object(
  {
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2_147_483_647,
        description: "With it, the document also lists the run's events after this seq (`events`, at most 1000) and `eventCursor`, the seq to ask after next time",
      }),
    ),
  },
  { additionalProperties: false },
);

export function registerGetBatchResults(app: App, chat: ChatService, events: EventsService): void {
  app.get(
    '/batch/:batchId/results',
    {
      schema: {
        tags: ['chat'],
        summary: "A run's status and every stage result so far, read from PostgreSQL",
        params: IdParams('batchId'),
        querystring: ResultsQuery,
        response: { 200: BatchDocumentSchema, ...errorResponses },
      },
    },
    async (request) => {
      const params = request.params as { batchId: string };
      const { after } = request.query as { after?: number };
      const actor = actorOf(request);
      const batchId = requireId(params.batchId, 'Batch');
      const document = await chat.getBatchResults(actor, batchId);
      if (after === undefined) return document;
      const list = await events.readBatch(actor, batchId, after);
      return { ...document, events: list, eventCursor: list.at(-1)?.seq ?? after };
    },
  );
}
