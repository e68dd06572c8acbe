import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { HybridChatService } from '../../../domain/chat/hybrid-chat.service.js';
import { actorOf } from '../../plugins/auth.js';
import { disconnectSignal } from '../../disconnect-signal.js';
import { errorResponses, requireId } from '../../schemas/common.js';
import { acceptErrorResponses, BatchDocumentSchema, checkContentSize, MessageContent, MultitaskStrategySchema } from '../../schemas/chat.js';
import { AcceptedSchema, idempotencyOf } from '../../schemas/accepted.js';

const ContactRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    employer: Type.Optional(Type.String({ maxLength: 200 })),
    title: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const MAX_WAIT_SECONDS = 60;

const AcceptedWithResults = Type.Intersect([AcceptedSchema, Type.Object({ results: Type.Optional(BatchDocumentSchema) })]);

/** Every stage on one message, with options; optionally waits for the result. */
export function registerComprehensive(app: App, chat: HybridChatService, limits: { maxContentBytes: number }): void {
  app.post(
    '/comprehensive',
    {
      bodyLimit: limits.maxContentBytes * 2 + 16 * 1024,
      schema: {
        tags: ['chat'],
        summary: 'Process a message through every stage (202); `wait` seconds to answer with the results when ready',
        body: Type.Object(
          {
            message: MessageContent,
            threadId: Type.Optional(Type.String({ maxLength: 100 })),
            includeRAG: Type.Optional(Type.Boolean()),
            includeSecurityAnalysis: Type.Optional(Type.Boolean()),
            includeContactEnrichment: Type.Optional(Type.Boolean()),
            contacts: Type.Optional(Type.Array(ContactRequest, { maxItems: 5 })),
            wait: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_WAIT_SECONDS })),
            multitaskStrategy: Type.Optional(MultitaskStrategySchema),
          },
          { additionalProperties: false },
        ),
        response: {
          202: AcceptedWithResults,
          200: AcceptedWithResults,
          ...errorResponses,
          ...acceptErrorResponses,
          413: Type.Ref('ErrorResponse'),
          429: Type.Ref('ErrorResponse', { description: '`too_many_waits` or `backlog_full` (Retry-After)' }),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const idempotency = idempotencyOf(request);
      const signal = body.wait ? disconnectSignal(reply) : undefined;
      const answer = await chat.comprehensive(actorOf(request), {
        message: checkContentSize(body.message, limits.maxContentBytes),
        ...(body.threadId ? { threadId: requireId(body.threadId, 'Thread') } : {}),
        ...(body.includeRAG !== undefined ? { includeRAG: body.includeRAG } : {}),
        ...(body.includeSecurityAnalysis !== undefined ? { includeSecurityAnalysis: body.includeSecurityAnalysis } : {}),
        ...(body.includeContactEnrichment !== undefined ? { includeContactEnrichment: body.includeContactEnrichment } : {}),
        ...(body.contacts ? { contacts: body.contacts } : {}),
        ...(body.wait ? { wait: body.wait } : {}),
        ...(body.multitaskStrategy ? { multitaskStrategy: body.multitaskStrategy } : {}),
        ...(idempotency ? { idempotency } : {}),
      }, signal);
      // Finished within the wait: 200 with the results; otherwise still 202.
      return reply.status(answer.results?.finishedAt ? 200 : 202).send(answer);
    },
  );
}
