import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { DocumentsService } from '../../../domain/documents/documents.service.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, PageQuery } from '../../schemas/common.js';
import { DocumentSummarySchema, toDocumentSummary } from './document.schema.js';

export function registerListDocuments(app: App, documents: DocumentsService): void {
  app.get(
    '/',
    {
      schema: {
        tags: ['documents'],
        summary: "List the organization's documents, newest first",
        querystring: PageQuery,
        response: {
          200: Type.Object({ documents: Type.Array(DocumentSummarySchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const page = await documents.list(actorOf(request).orgId, request.query.limit ?? 50, request.query.cursor);
      return { documents: page.items.map(toDocumentSummary), nextCursor: page.nextCursor };
    },
  );
}
