import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, PageQuery, requireId } from '../../schemas/common.js';
import { Message, toMessage } from './thread.schema.js';

export function registerListMessages(app: App, chat: ChatService): void {
  app.get(
    '/threads/:threadId/messages',
    {
      schema: {
        tags: ['threads'],
        summary: "A thread's messages, oldest first; a user message and its reply share a batchId",
        params: IdParams('threadId'),
        querystring: PageQuery,
        response: { 200: Type.Object({ messages: Type.Array(Message), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses },
      },
    },
    async (request) => {
      const params = request.params as { threadId: string };
      const page = await chat.listMessages(actorOf(request), requireId(params.threadId, 'Thread'), request.query.limit ?? 50, request.query.cursor);
      return { messages: page.items.map(toMessage), nextCursor: page.nextCursor };
    },
  );
}
