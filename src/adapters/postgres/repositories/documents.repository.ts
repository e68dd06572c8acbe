import { and, desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import type pg from 'pg';
import { documentChunks, documents } from '../schema.js';
import { afterNewestCursor, newestFirstPage, type Page } from './cursor.js';
import { createCoalescer } from '../../../lib/coalescer.js';
import type { RetrievedPassage } from '../../../domain/stages/rag/rag.service.js';
import type { CreateDocumentOutcome, DocumentQuota, DocumentSummary } from '../../../domain/documents/document-store.js';

export type { CreateDocumentOutcome, DocumentQuota, DocumentSummary };

/*
 * Several searches (numbered by `idx`; each its own organization, text and limit) share the
 * statement (see createCoalescer): the retrieval stage runs one for every message.
 */
const SEARCH_CHUNKS = `
with q as (
  select q.idx, q.org_id, q.lim, nullif(replace(plainto_tsquery('english', q.text)::text, '&', '|'), '')::tsquery as query
    from unnest($1::text[], $2::uuid[], $3::int[]) with ordinality as q(text, org_id, lim, idx)
)
select q.idx, h.* from q
 cross join lateral (
  select r.document_id as id, r.title, r.content as passage,
         ts_headline('english', r.content, q.query,
           'MaxFragments=2, MaxWords=40, MinWords=15, StartSel="", StopSel="", FragmentDelimiter=" … "') as snippet,
         r.score::float8 as score
    from (
      select c.document_id, c.title, c.content,
             ts_rank_cd(c.tsv, q.query, 1) as score,
             row_number() over (partition by c.document_id order by ts_rank_cd(c.tsv, q.query, 1) desc, c.position) as n
        from document_chunks c
       where q.query is not null and c.org_id = q.org_id and c.tsv @@ q.query
    ) r
   where r.n = 1
   order by r.score desc, r.document_id
   limit q.lim
 ) h
 order by q.idx, h.score desc, h.id`;

/** The two-key advisory lock space of per-organization document writes (apart from the one-key locks). */
const DOCUMENT_QUOTA_LOCK_CLASS = 7_240_314;

export function createDocumentsRepository(db: Db, pool: pg.Pool) {
  const search = createCoalescer<{ orgId: string; text: string; limit: number }, RetrievedPassage[]>(async (items) => {
    // Named: it runs for every message, so each connection parses and plans it once.
    const { rows } = await pool.query<{ idx: string; id: string; title: string; passage: string; snippet: string; score: number }>({
      name: 'honeyjar-search-chunks',
      text: SEARCH_CHUNKS,
      values: [items.map((i) => i.text), items.map((i) => i.orgId), items.map((i) => i.limit)],
    });
    const found: RetrievedPassage[][] = items.map(() => []);
    for (const row of rows) {
      found[Number(row.idx) - 1]?.push({
        id: row.id,
        title: row.title,
        snippet: row.snippet,
        passage: row.passage,
        score: Number(Number(row.score).toFixed(4)),
      });
    }
    return found.map((value) => ({ status: 'fulfilled' as const, value }));
  });

  return {
    /**
     * Stores a document and its chunks unless the organization's documents would exceed `quota`.
     * The check and the insert run under a per-organization lock in one transaction, so concurrent
     * writes cannot together overshoot it.
     */
    async create(orgId: string, userId: string | null, title: string, content: string, chunks: string[], quota: DocumentQuota): Promise<CreateDocumentOutcome> {
      const size = Buffer.byteLength(content);
      return db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${DOCUMENT_QUOTA_LOCK_CLASS}::int4, hashtext(${orgId}::text))`);
        const { rows } = await tx.execute<{ count: number; bytes: string }>(
          sql`select count(*)::int as count, coalesce(sum(octet_length(content)), 0)::bigint as bytes from ${documents} where ${documents.orgId} = ${orgId}`,
        );
        const used = { count: Number(rows[0]?.count ?? 0), bytes: Number(rows[0]?.bytes ?? 0) };
        if (used.count + 1 > quota.count || used.bytes + size > quota.bytes) return { kind: 'over_quota', used };
        const [doc] = await tx
          .insert(documents)
          .values({ orgId, createdBy: userId, title, content })
          .returning({ id: documents.id, title: documents.title, createdAt: documents.createdAt });
        if (chunks.length > 0) {
          await tx.insert(documentChunks).values(chunks.map((chunk, position) => ({ documentId: doc!.id, orgId, position, title, content: chunk })));
        }
        return { kind: 'created', document: { ...doc!, size, chunks: chunks.length } };
      });
    },

    async list(orgId: string, limit: number, cursor?: string): Promise<Page<DocumentSummary>> {
      const rows = await db
        .select({
          id: documents.id,
          title: documents.title,
          createdAt: documents.createdAt,
          size: sql<number>`octet_length(${documents.content})`.mapWith(Number),
          chunks: sql<number>`(select count(*) from ${documentChunks} where ${documentChunks.documentId} = ${documents.id})`.mapWith(Number),
        })
        .from(documents)
        .where(and(eq(documents.orgId, orgId), afterNewestCursor(documents.createdAt, documents.id, cursor)))
        .orderBy(desc(documents.createdAt), desc(documents.id))
        .limit(limit + 1);
      return newestFirstPage(rows, limit);
    },

    async get(orgId: string, id: string) {
      const [row] = await db
        .select({ id: documents.id, title: documents.title, content: documents.content, createdAt: documents.createdAt })
        .from(documents)
        .where(and(eq(documents.orgId, orgId), eq(documents.id, id)));
      return row;
    },

    /**
     * Deletes the document when `createdBy` is undefined (any) or is its creator. `forbidden`: it
     * exists but someone else created it; `not_found`: no such document in this organization.
     */
    async delete(orgId: string, id: string, createdBy?: string): Promise<'deleted' | 'forbidden' | 'not_found'> {
      const rows = await db
        .delete(documents)
        .where(and(eq(documents.orgId, orgId), eq(documents.id, id), createdBy === undefined ? undefined : eq(documents.createdBy, createdBy)))
        .returning({ id: documents.id });
      if (rows.length > 0) return 'deleted';
      if (createdBy === undefined) return 'not_found';
      const [exists] = await db
        .select({ id: documents.id })
        .from(documents)
        .where(and(eq(documents.orgId, orgId), eq(documents.id, id)));
      return exists ? 'forbidden' : 'not_found';
    },

    /**
     * Full-text search over one organization's chunks. Any of the query's terms may match (an AND
     * of every word of a natural question finds too little); ts_rank_cd then favours chunks that
     * hold more of them, closer together. The best chunk stands for its document; its whole text
     * comes along so that the retrieval stage can scan what the snippet was cut from.
     */
    async search(orgId: string, text: string, limit: number): Promise<RetrievedPassage[]> {
      return search({ orgId, text, limit });
    },
  };
}

export type DocumentsRepository = ReturnType<typeof createDocumentsRepository>;
