import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, PageQuery } from '../../schemas/common.js';
import { Thread, toThread } from './thread.schema.js';

export function registerListThreads(app: App, chat: ChatService): void {
  app.get(
    '/threads',
    {
      schema: {
        tags: ['threads'],
        summary: "List the organization's threads, newest first",
        querystring: PageQuery,
        response: { 200: Type.Object({ threads: Type.Array(Thread), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses },
      },
    },
    async (request) => {
      const page = await chat.listThreads(actorOf(request), request.query.limit ?? 50, request.query.cursor);
      return { threads: page.items.map(toThread), nextCursor: page.nextCursor };
    },
  );
}
