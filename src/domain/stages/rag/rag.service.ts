import type { RagDocument, RagResult } from '../types.js';

export interface DocumentSearch {
  search(orgId: string, text: string, limit: number): Promise<RagDocument[]>;
}

export interface RagService {
  retrieve(orgId: string, text: string): Promise<RagResult>;
}

/** Retrieval over the organization's own documents; never another organization's. */
export function createRagService(deps: { search: DocumentSearch; limit?: number }): RagService {
  const limit = deps.limit ?? 5;
  return {
    async retrieve(orgId, text) {
      // Very long inputs are mostly pasted material; the start says what is being asked.
      const query = text.length > 4000 ? text.slice(0, 4000) : text;
      return { documents: await deps.search.search(orgId, query, limit) };
    },
  };
}
