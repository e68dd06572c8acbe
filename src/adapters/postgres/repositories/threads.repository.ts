import { and, asc, desc, eq, gt } from 'drizzle-orm';
import type { Db } from '../client.js';
import { messages, threads } from '../schema.js';
import { afterNewestCursor, decodeCursor, encodeCursor, InvalidCursorError, newestFirstPage, type Page } from './cursor.js';

export interface ThreadRecord {
  id: string;
  title: string;
  createdAt: Date;
}

export interface MessageRecord {
  id: string;
  seq: number;
  role: 'user' | 'assistant';
  content: string;
  createdAt: Date;
  runId: string | null;
}

type MessageCursor = { seq: number };
const isMessageCursor = (v: Record<string, unknown>): v is MessageCursor => Number.isSafeInteger(v.seq);

/**
 * The last user messages of a thread before the given seq (a bounded walk back along the thread's
 * index), each followed by its run's reply if there is one: newest first, at most `limit` rows,
 * each with its exchange's `turn`. The LLM step reads it inside its claim (src/adapters/postgres/run-store/steps.ts).
 * Exchanges answered by the local guard (`guarded`, set on both of their messages when the reply
 * is stored) are left out: what was kept from the model once is never sent to it later.
 */
export function historySql(thread: string, beforeSeq: string, limit: string): string {
  return `
  with u as (
    select id, seq, role, content, created_at, run_id from messages
     where thread_id = ${thread} and seq < ${beforeSeq} and role = 'user' and run_id is not null and not guarded
     order by seq desc limit ${limit}
  )
  select id, seq, role, content, created_at, run_id, turn from (
    select u.*, u.seq as turn from u
    union all
    select a.id, a.seq, a.role, a.content, a.created_at, a.run_id, u.seq as turn
      from u join messages a on a.run_id = u.run_id and a.role = 'assistant' and not a.guarded
  ) h
   order by turn desc, (role = 'assistant') desc
   limit ${limit}`;
}

export function createThreadsRepository(db: Db) {
  return {
    async create(orgId: string, userId: string, title: string): Promise<ThreadRecord> {
      const [row] = await db
        .insert(threads)
        .values({ orgId, createdBy: userId, title })
        .returning({ id: threads.id, title: threads.title, createdAt: threads.createdAt });
      return row!;
    },

    async get(orgId: string, threadId: string): Promise<ThreadRecord | undefined> {
      const [row] = await db
        .select({ id: threads.id, title: threads.title, createdAt: threads.createdAt })
        .from(threads)
        .where(and(eq(threads.orgId, orgId), eq(threads.id, threadId)));
      return row;
    },

    /** Newest first. */
    async list(orgId: string, limit: number, cursor?: string): Promise<Page<ThreadRecord>> {
      const rows = await db
        .select({ id: threads.id, title: threads.title, createdAt: threads.createdAt })
        .from(threads)
        .where(and(eq(threads.orgId, orgId), afterNewestCursor(threads.createdAt, threads.id, cursor)))
        .orderBy(desc(threads.createdAt), desc(threads.id))
        .limit(limit + 1);
      return newestFirstPage(rows, limit);
    },

    /** Oldest first. */
    async listMessages(orgId: string, threadId: string, limit: number, cursor?: string): Promise<Page<MessageRecord>> {
      const after = decodeCursor(cursor, isMessageCursor);
      if (after === 'invalid') throw new InvalidCursorError();
      const rows = await db
        .select({
          id: messages.id,
          seq: messages.seq,
          role: messages.role,
          content: messages.content,
          createdAt: messages.createdAt,
          runId: messages.runId,
        })
        .from(messages)
        .where(and(eq(messages.orgId, orgId), eq(messages.threadId, threadId), after ? gt(messages.seq, after.seq) : undefined))
        .orderBy(asc(messages.seq))
        .limit(limit + 1);
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return { items, nextCursor: rows.length > limit && last ? encodeCursor({ seq: last.seq }) : null };
    },
  };
}

export type ThreadsRepository = ReturnType<typeof createThreadsRepository>;
