import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { HybridChatService } from '../../../domain/chat/hybrid-chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { acceptErrorResponses, checkContentSize, MessageContent, MultitaskStrategySchema } from '../../schemas/chat.js';
import { AcceptedSchema, idempotencyOf } from '../../schemas/accepted.js';

/** Acknowledges at once (202); the stages run in the background. */
export function registerPostQueuedMessage(app: App, chat: HybridChatService, limits: { maxContentBytes: number }): void {
  app.post(
    '/threads/:threadId/messages/queued',
    {
      bodyLimit: limits.maxContentBytes * 2 + 1024,
      schema: {
        tags: ['chat'],
        summary: 'Send a message for background processing; poll GET /batch/:batchId/results',
        params: IdParams('threadId'),
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ description: 'Replays answer the first request (its place and estimate as they stand now); another request with the same key is 422' })) }),
        body: Type.Object({ content: MessageContent, multitaskStrategy: Type.Optional(MultitaskStrategySchema) }, { additionalProperties: false }),
        response: { 202: AcceptedSchema, ...errorResponses, ...acceptErrorResponses, 413: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      const params = request.params as { threadId: string };
      const threadId = requireId(params.threadId, 'Thread');
      const content = checkContentSize(request.body.content, limits.maxContentBytes);
      const accepted = await chat.sendQueued(actorOf(request), threadId, content, idempotencyOf(request), request.body.multitaskStrategy);
      return reply.status(202).send(accepted);
    },
  );
}
