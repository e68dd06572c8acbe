import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { disconnectSignal } from '../../disconnect-signal.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { acceptErrorResponses, BatchDocumentSchema, checkContentSize, MessageContent, MultitaskStrategySchema } from '../../schemas/chat.js';

/** The original, blocking endpoint: answers once every stage has run. */
export function registerPostMessage(app: App, chat: ChatService, limits: { maxContentBytes: number }): void {
  app.post(
    '/threads/:threadId/messages',
    {
      bodyLimit: limits.maxContentBytes * 2 + 1024,
      schema: {
        tags: ['chat'],
        summary: 'Send a message and wait for the complete result (blocking)',
        params: IdParams('threadId'),
        body: Type.Object({ content: MessageContent, multitaskStrategy: Type.Optional(MultitaskStrategySchema) }, { additionalProperties: false }),
        response: {
          200: Type.Intersect([
            BatchDocumentSchema,
            Type.Object({
              messageId: Type.String(),
              assistantMessage: Type.Union([Type.Object({ id: Type.String(), content: Type.String() }), Type.Null()]),
            }),
          ]),
          ...errorResponses,
          ...acceptErrorResponses,
          413: Type.Ref('ErrorResponse'),
        },
      },
    },
    async (request, reply) => {
      const params = request.params as { threadId: string };
      const threadId = requireId(params.threadId, 'Thread');
      const content = checkContentSize(request.body.content, limits.maxContentBytes);
      // A client that hangs up stops the pipeline and its provider calls; the run ends as cancelled.
      return chat.sendMessage(actorOf(request), threadId, content, disconnectSignal(reply), request.body.multitaskStrategy);
    },
  );
}
