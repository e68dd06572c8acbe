import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { HybridChatService } from '../../../domain/chat/hybrid-chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';

const Counts = Type.Object({
  waiting: Type.Integer(),
  active: Type.Integer(),
  delayed: Type.Integer(),
  completed: Type.Integer(),
  failed: Type.Integer(),
  paused: Type.Integer(),
  prioritized: Type.Integer(),
});

export function registerQueueStats(app: App, chat: HybridChatService): void {
  app.get(
    '/jobs/queue-stats',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Job counts per queue and in total',
        response: {
          200: Type.Object({ queues: Type.Record(Type.String(), Counts), totals: Counts, available: Type.Boolean() }),
          ...errorResponses,
          503: Type.Ref('ErrorResponse'),
        },
      },
    },
    async (request) => {
      actorOf(request);
      return chat.queueStats();
    },
  );
}
