import type pg from 'pg';
import type { AcceptOutcome, NewRun } from '../../../engine/run.js';
import type { ExclusiveAccept, ExclusiveOutcome } from '../../../domain/chat/multitask.js';
import { acceptColumns, CREATE_RUN, replayOf } from './accept.js';

/*
 * The accept of a message whose thread must be idle (`reject`) or made idle (`interrupt`). One
 * transaction: the thread's row is locked first, so that concurrent accepts of the thread take
 * turns; each statement after the lock sees what the one before it committed (read committed
 * takes a snapshot per statement). `enqueue` accepts go through the shared, batched statement,
 * which holds the thread's row only while it runs (see CREATE_RUN).
 */
const LOCK_THREAD = 'select id from threads where id = $1 and org_id = $2 for update';
const BY_KEY = 'select id, idempotency_fingerprint from runs where org_id = $1 and idempotency_key = $2';
const OPEN_RUNS = 'select id from runs where thread_id = $1 and finished_at is null order by seq';

export function createExclusiveAccept(pool: pg.Pool): ExclusiveAccept {
  return {
    async create(input: NewRun<string>, whenBusy): Promise<ExclusiveOutcome> {
      const client = await pool.connect();
      let done = false;
      try {
        await client.query('begin');
        const thread = await client.query(LOCK_THREAD, [input.threadId, input.orgId]);
        if (thread.rowCount === 0) return await rollback(client, { kind: 'thread_not_found' });
        if (input.idempotencyKey) {
          // A replay answers the first request, even while that request's run is still open.
          const { rows } = await client.query(BY_KEY, [input.orgId, input.idempotencyKey]);
          if (rows[0])
            return await rollback(client, replayOf(input, rows[0].id, rows[0].idempotency_fingerprint) as Exclude<AcceptOutcome, { kind: 'created' }>);
        }
        const open = (await client.query(OPEN_RUNS, [input.threadId])).rows.map((row) => row.id as string);
        if (open.length > 0 && whenBusy === 'reject') return await rollback(client, { kind: 'thread_busy', runId: open[0]! });
        const { rows } = await client.query(CREATE_RUN, acceptColumns(input));
        await client.query('commit');
        done = true;
        const row = rows[0]!;
        return { kind: 'created', runId: row.run_id, createdAt: row.created_at, messageId: row.message_id, interrupted: open };
      } catch (error) {
        if (!done) await client.query('rollback').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
  };
}

async function rollback<T>(client: pg.PoolClient, outcome: T): Promise<T> {
  await client.query('rollback');
  return outcome;
}
