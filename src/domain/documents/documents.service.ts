import { notFound } from '../errors.js';
import { chunkText } from './chunker.js';
import type { DocumentsRepository } from '../../db/repositories/documents.repository.js';

export interface DocumentsServiceDeps {
  documents: DocumentsRepository;
}

/** An organization's reference documents: chunked and indexed for full-text search on write. */
export function createDocumentsService({ documents }: DocumentsServiceDeps) {
  return {
    add(orgId: string, userId: string | null, title: string, content: string) {
      return documents.create(orgId, userId, title, content, chunkText(content));
    },
    list(orgId: string, limit: number, cursor?: string) {
      return documents.list(orgId, limit, cursor);
    },
    async get(orgId: string, id: string) {
      const doc = await documents.get(orgId, id);
      if (!doc) throw notFound('Document');
      return doc;
    },
    async remove(orgId: string, id: string): Promise<void> {
      if (!(await documents.delete(orgId, id))) throw notFound('Document');
    },
  };
}

export type DocumentsService = ReturnType<typeof createDocumentsService>;
