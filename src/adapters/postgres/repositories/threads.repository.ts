import { and, desc, eq } from 'drizzle-orm';
import type { Db } from '../client.js';
import { threads } from '../schema.js';
import type { MessageRecord, ThreadRecord, ThreadStore } from '../../../domain/chat/thread-store.js';
import { afterNewestCursor, decodeCursor, encodeCursor, InvalidCursorError, newestFirstPage, type Page } from './cursor.js';

export type { MessageRecord, ThreadRecord };

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

interface MessageRow {
  id: string | null;
  seq: string;
  role: 'user' | 'assistant';
  content: string;
  created_at: Date;
  run_id: string | null;
}

/** The organization's thread (one row with nulls when it has no messages after the cursor, none when it is not theirs) and its page of messages. */
const LIST_MESSAGES = `
select m.id, m.seq, m.role, m.content, m.created_at, m.run_id
  from threads t
  left join lateral (
    select id, seq, role, content, created_at, run_id from messages
     where thread_id = t.id and org_id = t.org_id and ($3::bigint is null or seq > $3::bigint)
     order by seq limit $4
  ) m on true
 where t.id = $1 and t.org_id = $2
 order by m.seq`;

export function createThreadsRepository(db: Db): ThreadStore {
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

    /**
     * Oldest first; undefined when the thread is not the organization's. The thread's check and
     * its page are one statement: clients poll this for replies.
     */
    async listMessages(orgId: string, threadId: string, limit: number, cursor?: string): Promise<Page<MessageRecord> | undefined> {
      const after = decodeCursor(cursor, isMessageCursor);
      if (after === 'invalid') throw new InvalidCursorError();
      const { rows } = await db.$client.query<MessageRow>({
        name: 'honeyjar-list-messages',
        text: LIST_MESSAGES,
        values: [threadId, orgId, after ? after.seq : null, limit + 1],
      });
      if (rows.length === 0) return undefined;
      const items: MessageRecord[] = rows
        .filter((row) => row.id !== null)
        .slice(0, limit)
        .map((row) => ({ id: row.id!, seq: Number(row.seq), role: row.role, content: row.content, createdAt: row.created_at, runId: row.run_id }));
      const last = items.at(-1);
      return { items, nextCursor: rows.length > limit && last ? encodeCursor({ seq: last.seq }) : null };
    },
  };
}

export type ThreadsRepository = ReturnType<typeof createThreadsRepository>;
