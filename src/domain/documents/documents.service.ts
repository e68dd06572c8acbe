import { AppError, notFound } from '../errors.js';
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
    /** Members add documents and delete their own; another member's (or an ingested one) needs an admin. */
    async remove(actor: { orgId: string; userId: string; role: 'admin' | 'member' }, id: string): Promise<void> {
      const outcome = await documents.delete(actor.orgId, id, actor.role === 'admin' ? undefined : actor.userId);
      if (outcome === 'not_found') throw notFound('Document');
      if (outcome === 'forbidden') throw new AppError('forbidden', 403, 'Deleting a document someone else added needs an organization admin');
    },
  };
}

export type DocumentsService = ReturnType<typeof createDocumentsService>;
