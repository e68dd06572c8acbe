import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { ChatService } from '../../../domain/chat/chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { Thread, toThread } from './thread.schema.js';

export function registerCreateThread(app: App, chat: ChatService): void {
  app.post(
    '/threads',
    {
      schema: {
        tags: ['threads'],
        summary: 'Create a conversation thread',
        body: Type.Object({ title: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
        response: { 201: Thread, ...errorResponses },
      },
    },
    async (request, reply) => {
      const thread = await chat.createThread(actorOf(request), request.body?.title);
      return reply.status(201).send(toThread(thread));
    },
  );
}
