import type { Page } from '../page.js';

export interface DocumentSummary {
  id: string;
  title: string;
  createdAt: Date;
  size: number;
  chunks: number;
}

export interface DocumentQuota {
  count: number;
  bytes: number;
}

export type CreateDocumentOutcome = { kind: 'created'; document: DocumentSummary } | { kind: 'over_quota'; used: DocumentQuota };

/** What the documents service needs of the library (implemented over PostgreSQL in src/adapters/postgres/repositories/documents.repository.ts). */
export interface DocumentStore {
  /** Stores a document and its chunks unless the organization's documents would exceed `quota`. */
  create(orgId: string, userId: string | null, title: string, content: string, chunks: string[], quota: DocumentQuota): Promise<CreateDocumentOutcome>;
  list(orgId: string, limit: number, cursor?: string): Promise<Page<DocumentSummary>>;
  get(orgId: string, id: string): Promise<{ id: string; title: string; content: string; createdAt: Date } | undefined>;
  /** `forbidden`: it exists but `createdBy` (when given) did not create it. */
  delete(orgId: string, id: string, createdBy?: string): Promise<'deleted' | 'forbidden' | 'not_found'>;
}
