import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { HybridChatService } from '../../../domain/chat/hybrid-chat.service.js';
import { AppError } from '../../../domain/errors.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { checkContentSize, MessageContent } from '../../schemas/chat.js';
import { AcceptedSchema, idempotencyKeyOf } from '../../schemas/accepted.js';

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
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 200 })) }),
        body: Type.Object({ content: MessageContent }, { additionalProperties: false }),
        response: { 202: AcceptedSchema, ...errorResponses, 413: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      const params = request.params as { threadId: string };
      const threadId = requireId(params.threadId, 'Thread');
      const content = checkContentSize(request.body.content, limits.maxContentBytes);
      const key = idempotencyKeyOf(request.headers);
      if (key === 'invalid') throw new AppError('invalid_request', 400, 'Idempotency-Key must be 1–200 printable characters');
      const accepted = await chat.sendQueued(actorOf(request), threadId, content, key);
      return reply.status(202).send(accepted);
    },
  );
}
