import { Type } from '@sinclair/typebox';
import type { DocumentSummary } from '../../../domain/documents/document-store.js';

export const DocumentSummarySchema = Type.Object({
  id: Type.String(),
  title: Type.String(),
  createdAt: Type.String(),
  size: Type.Integer({ description: 'bytes of content' }),
  chunks: Type.Integer(),
});

export const toDocumentSummary = (doc: DocumentSummary) => ({
  id: doc.id,
  title: doc.title,
  createdAt: doc.createdAt.toISOString(),
  size: doc.size,
  chunks: doc.chunks,
});
