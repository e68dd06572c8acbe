import type { App } from '../../types.js';
import type { DocumentsService } from '../../../domain/documents/documents.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';

export function registerDeleteDocument(app: App, documents: DocumentsService): void {
  app.delete(
    '/:documentId',
    {
      schema: { tags: ['documents'], summary: 'Delete a document and its index (its creator, or an organization admin)', params: IdParams('documentId'), response: { ...errorResponses } },
    },
    async (request, reply) => {
      const params = request.params as { documentId: string };
      await documents.remove(actorOf(request), requireId(params.documentId, 'Document'));
      return reply.status(204).send();
    },
  );
}
