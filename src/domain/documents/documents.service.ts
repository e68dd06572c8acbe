import { AppError, notFound } from '../errors.js';
import { chunkText } from './chunker.js';
import type { DocumentQuota, DocumentStore, DocumentSummary } from './document-store.js';

export interface DocumentsServiceDeps {
  documents: DocumentStore;
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
    /** Members add documents and delete their own; another member's (or an ingested one) needs an admin. */
    async remove(actor: { orgId: string; userId: string; role: 'admin' | 'member' }, id: string): Promise<void> {
      const outcome = await documents.delete(actor.orgId, id, actor.role === 'admin' ? undefined : actor.userId);
      if (outcome === 'not_found') throw notFound('Document');
      if (outcome === 'forbidden') throw new AppError('forbidden', 403, 'Deleting a document someone else added needs an organization admin');
    },
  };
}

export type DocumentsService = ReturnType<typeof createDocumentsService>;
