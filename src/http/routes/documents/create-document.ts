import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { DocumentsService } from '../../../domain/documents/documents.service.js';
import { AppError } from '../../../domain/errors.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { DocumentSummarySchema, toDocumentSummary } from './document.schema.js';

export function registerCreateDocument(app: App, documents: DocumentsService, limits: { maxDocumentBytes: number }): void {
  app.post(
    '/',
    {
      bodyLimit: limits.maxDocumentBytes * 2 + 4096,
      schema: {
        tags: ['documents'],
        summary: 'Add a document for retrieval (chunked and indexed on write)',
        body: Type.Object(
          { title: Type.String({ minLength: 1, maxLength: 300, pattern: '\\S' }), content: Type.String({ minLength: 1, pattern: '\\S' }) },
          { additionalProperties: false },
        ),
        response: { 201: DocumentSummarySchema, ...errorResponses, 409: Type.Ref('ErrorResponse'), 413: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const { title, content } = request.body;
      if (Buffer.byteLength(content) > limits.maxDocumentBytes) {
        throw new AppError('content_too_large', 413, `content is larger than ${limits.maxDocumentBytes} bytes`);
      }
      const doc = await documents.add(actor.orgId, actor.userId, title.trim(), content);
      return reply.status(201).send(toDocumentSummary(doc));
    },
  );
}
