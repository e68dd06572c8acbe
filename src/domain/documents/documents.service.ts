import { AppError, notFound } from '../errors.js';
import { chunkText } from './chunker.js';
import type { DocumentQuota, DocumentsRepository, DocumentSummary } from '../../db/repositories/documents.repository.js';

export interface DocumentsServiceDeps {
  documents: DocumentsRepository;
  /** What one organization may store at most, in documents and in bytes of content. */
  quota: DocumentQuota;
}

/** An organization's reference documents: chunked and indexed for full-text search on write. */
export function createDocumentsService({ documents, quota }: DocumentsServiceDeps) {
  return {
    async add(orgId: string, userId: string | null, title: string, content: string): Promise<DocumentSummary> {
      const outcome = await documents.create(orgId, userId, title, content, chunkText(content), quota);
      if (outcome.kind === 'created') return outcome.document;
      throw new AppError(
        'document_quota_exceeded',
        409,
        `The organization's documents would exceed its quota of ${quota.count} documents and ${quota.bytes} bytes ` +
          `(${outcome.used.count} documents and ${outcome.used.bytes} bytes stored); delete documents to add more`,
      );
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
