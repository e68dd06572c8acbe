import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { Thread, toThread } from './thread.schema.js';

export function registerGetThread(app: App, chat: ChatService): void {
  app.get(
    '/threads/:threadId',
    {
      schema: { tags: ['threads'], summary: 'Get a thread', params: IdParams('threadId'), response: { 200: Thread, ...errorResponses } },
    },
    async (request) => {
      const params = request.params as { threadId: string };
      return toThread(await chat.getThread(actorOf(request), requireId(params.threadId, 'Thread')));
    },
  );
}
