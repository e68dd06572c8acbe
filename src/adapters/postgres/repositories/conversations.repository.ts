import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { messages, threads } from '../schema.js';
import type { ConversationStore, SentTurn } from '../../../domain/chat/conversation.service.js';

/**
 * Threads that start from a conversation a client sent: the earlier turns are stored as the
 * thread's messages, so the LLM stage reads them as history through the same query and the same
 * gate (history-gate.ts) as any thread's. Each question and the reply after it share an exchange
 * id in `run_id`, which is how the history query pairs them; it names no run (no batch), since
 * nothing of this server produced those turns.
 */
const CREATE_THREAD = `
with t as (
  insert into threads (org_id, created_by, title) values ($1::uuid, $2::uuid, $3) returning id
),
m as (
  insert into messages (org_id, thread_id, run_id, role, content)
  select $1::uuid, t.id, x.exchange, x.role::message_role, x.content
    from t, rows from (jsonb_to_recordset($4::jsonb) as (exchange uuid, role text, content text)) with ordinality as x(exchange, role, content, ord)
   order by x.ord
)
select id from t`;

export function createConversationsRepository(db: Db, pool: pg.Pool): ConversationStore {
  return {
    /** The thread and its earlier turns, in one statement; turns alternate, starting with a question. */
    async createThread(orgId: string, userId: string, title: string, turns: readonly SentTurn[]): Promise<{ id: string }> {
      const rows: Array<{ exchange: string; role: SentTurn['role']; content: string }> = [];
      let exchange: string | undefined;
      for (const turn of turns) {
        if (turn.role === 'user') exchange = randomUUID();
        // A reply without a question cannot be paired; the caller leaves it out, this keeps it so.
        if (exchange) rows.push({ exchange, role: turn.role, content: turn.content });
      }
      // Identity values are drawn in the order the rows come, so the history keeps its order.
      const { rows: created } = await pool.query<{ id: string }>({
        name: 'honeyjar-create-conversation-thread',
        text: CREATE_THREAD,
        values: [orgId, userId, title, JSON.stringify(rows)],
      });
      return { id: created[0]!.id };
    },

    /**
     * Removes a thread made by createThread when no run was accepted in it (a replayed or refused
     * Idempotency-Key, a failed accept): a failed request leaves nothing behind.
     */
    async discardThread(orgId: string, threadId: string): Promise<void> {
      await db.transaction(async (tx) => {
        const [{ used } = { used: true }] = await tx
          .select({ used: sql<boolean>`exists (select 1 from runs where runs.thread_id = ${threadId} and runs.org_id = ${orgId})` })
          .from(threads)
          .where(and(eq(threads.id, threadId), eq(threads.orgId, orgId)))
          .for('update');
        if (used) return;
        await tx.delete(messages).where(and(eq(messages.threadId, threadId), eq(messages.orgId, orgId)));
        await tx.delete(threads).where(and(eq(threads.id, threadId), eq(threads.orgId, orgId)));
      });
    },

    /** The run's reply and whether the local guard answered it (kept from the external model). */
    async reply(orgId: string, runId: string): Promise<{ id: string; content: string; guarded: boolean } | undefined> {
      const [row] = await db
        .select({ id: messages.id, content: messages.content, guarded: messages.guarded })
        .from(messages)
        .where(and(eq(messages.orgId, orgId), eq(messages.runId, runId), eq(messages.role, 'assistant')));
      return row;
    },
  };
}
