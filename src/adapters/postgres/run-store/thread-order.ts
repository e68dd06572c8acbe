import type pg from 'pg';
import { createCoalescer } from '../../../lib/coalescer.js';
import type { OpenRun, StepStates } from '../../../engine/run.js';
import { answersByIdx } from './sql.js';

/**
 * For each (thread, seq): whether a run earlier in that thread (by message order) is still open. A
 * subquery with a limit, so that each is an index lookup by thread and seq (see threadMovedSql in steps.ts).
 */
const EARLIER_OPEN_RUNS = `
select q.idx, coalesce((select true from runs r where r.thread_id = q.thread_id and r.finished_at is null and r.seq < q.seq limit 1), false) as waiting
  from unnest($1::uuid[], $2::bigint[]) with ordinality as q(thread_id, seq, idx)`;

/** For each thread, its oldest open run: the one whose reply may be produced next. */
const NEXT_OPEN_RUNS = `
select q.idx, n.id, n.org_id, n.driver, n.step_states
  from unnest($1::uuid[]) with ordinality as q(thread_id, idx)
 cross join lateral (select id, org_id, driver, step_states from runs r
                      where r.thread_id = q.thread_id and r.finished_at is null order by r.seq limit 1) n`;

/** The thread-order reads: whether an earlier run of a thread is open, and a thread's next open run. */
export function createThreadOrderReads<S extends string>(pool: pg.Pool) {
  // Read after the caller's own commit, as each caller would alone: several share a statement.
  const earlierOpenRun = createCoalescer<{ threadId: string; seq: number }, boolean>(async (items) => {
    const { rows } = await pool.query({
      name: 'honeyjar-earlier-open-runs',
      text: EARLIER_OPEN_RUNS,
      values: [items.map((i) => i.threadId), items.map((i) => i.seq)],
    });
    return answersByIdx(rows, items.length, (row) => row.waiting === true).map((answer) => ({ ...answer, value: answer.value === true }));
  });
  const nextOpenRunOf = createCoalescer<string, OpenRun<S> | undefined>(async (threadIds) => {
    const { rows } = await pool.query({ name: 'honeyjar-next-open-runs', text: NEXT_OPEN_RUNS, values: [threadIds] });
    return answersByIdx(rows, threadIds.length, (row) => ({ id: row.id, orgId: row.org_id, driver: row.driver, states: row.step_states as StepStates<S> }));
  });

  return {
    async hasEarlierOpenRun(threadId: string, messageSeq: number): Promise<boolean> {
      return earlierOpenRun({ threadId, seq: messageSeq });
    },

    /** The thread's oldest open run, with its step states. */
    async nextOpenRun(threadId: string): Promise<OpenRun<S> | undefined> {
      return nextOpenRunOf(threadId);
    },
  };
}
