import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { BatchDocumentSchema } from '../../schemas/chat.js';

export function registerGetBatchResults(app: App, chat: ChatService): void {
  app.get(
    '/batch/:batchId/results',
    {
      schema: {
        tags: ['chat'],
        summary: "A run's status and every stage result so far, read from PostgreSQL",
        params: IdParams('batchId'),
        response: { 200: BatchDocumentSchema, ...errorResponses },
      },
    },
    async (request) => {
      const params = request.params as { batchId: string };
      return chat.getBatchResults(actorOf(request), requireId(params.batchId, 'Batch'));
    },
  );
}
