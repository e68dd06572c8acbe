import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { DocumentsService } from '../../../domain/documents/documents.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';

export function registerGetDocument(app: App, documents: DocumentsService): void {
  app.get(
    '/:documentId',
    {
      schema: {
        tags: ['documents'],
        summary: 'Get a document with its content',
        params: IdParams('documentId'),
        response: { 200: Type.Object({ id: Type.String(), title: Type.String(), content: Type.String(), createdAt: Type.String() }), ...errorResponses },
      },
    },
    async (request) => {
      const params = request.params as { documentId: string };
      const doc = await documents.get(actorOf(request).orgId, requireId(params.documentId, 'Document'));
      return { ...doc, createdAt: doc.createdAt.toISOString() };
    },
  );
}
