import { and, eq } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { runs } from '../schema.js';
import { createCoalescer } from '../../../lib/coalescer.js';
import type { AcceptOutcome, NewRun, Run } from '../../../engine/run.js';
import { answersByIdx } from './sql.js';
import { acceptedEventSql } from '../run-events/sql.js';

/*
 * Accepting a message writes two rows: the run (with every included step as `pending` in
 * step_states) and its user message, which share one seq. Step rows come later. Only for a thread
 * of the caller's organization, and only once per idempotency key. Several accepts (numbered by
 * `idx`) share the statement and its commit (see createCoalescer); each gets its own answer.
 * The run's event log starts in the same statement: its head and its `accepted` event (seq 1).
 *
 * The thread's row is locked before the message takes its seq, and stays locked until the accept
 * commits: accepts of one thread (from any process) commit in the order of their seqs, so nobody
 * can see a later message of a thread without the earlier ones — neither the thread-order rule
 * (a run waits for the open runs of its thread with a lower seq) nor a thread's event stream,
 * whose cursor moves past a run seq for good. Threads are locked in id order. The shared
 * statements skip a thread whose row another transaction holds (`thread_held`), so that one
 * thread's wait holds up no other accept; such an accept is made again on its own, waiting for
 * the row (`lock` = '').
 */
const createRunSql = (lock: 'skip locked' | '') => `
with t as (select id from threads where id = $2 and org_id = $3 for no key update ${lock}),
n as (select nextval('messages_seq_seq') as seq, gen_random_uuid() as message_id from t),
r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, idempotency_fingerprint, step_states, model_wait_ms, message_id, seq)
  select $1, $3, t.id, $4, $5, $6, $7::jsonb, $8, $11, $10::jsonb, $12::int, n.message_id, n.seq
    from t, n
  on conflict (org_id, idempotency_key) where idempotency_key is not null do nothing
  returning id, created_at, message_id, seq
),
m as (
  insert into messages (id, seq, org_id, thread_id, run_id, role, content, created_at)
  overriding system value
  select r.message_id, r.seq, $3, $2, r.id, 'user', $9, r.created_at from r
  returning id
),
${acceptedEventSql('$3::uuid', '$2::uuid')}
select 1 as idx, exists (select 1 from t) as thread_found,
       not exists (select 1 from t) and exists (select 1 from threads where id = $2 and org_id = $3) as thread_held,
       (select id from r) as run_id,
       (select created_at from r) as created_at,
       (select id from m) as message_id,
       ${EXISTING_RUN_SQL('$3', '$8')}`;

/** The accept of one message, skipping its thread while another transaction holds it. */
export const CREATE_RUN = createRunSql('skip locked');
/** The same, waiting for the thread's row. */
const CREATE_RUN_WAITING = createRunSql('');

/** The run holding an idempotency key already, and the fingerprint of the request that used it. */
function EXISTING_RUN_SQL(orgId: string, key: string): string {
  return `(case when ${key}::text is null then null
             else (select x.id from runs x where x.org_id = ${orgId} and x.idempotency_key = ${key}) end) as existing_run_id,
       (case when ${key}::text is null then null
             else (select x.idempotency_fingerprint from runs x where x.org_id = ${orgId} and x.idempotency_key = ${key}) end) as existing_fingerprint`;
}

/*
 * CREATE_RUN for a message that starts a new thread ($2, chosen by the caller; $13 its title):
 * the thread is written only together with its run, so a refused key or a failed statement
 * leaves no thread behind. (Runs have no foreign keys; the thread's row may come second.)
 */
const CREATE_RUN_IN_NEW_THREAD = `
with r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, idempotency_fingerprint, step_states, model_wait_ms, message_id, seq)
  values ($1, $3, $2, $4, $5, $6, $7::jsonb, $8, $11, $10::jsonb, $12::int, gen_random_uuid(), nextval('messages_seq_seq'))
  on conflict (org_id, idempotency_key) where idempotency_key is not null do nothing
  returning id, created_at, message_id, seq
),
t as (
  insert into threads (id, org_id, created_by, title, created_at)
  select $2, $3, $4, $13, r.created_at from r
  returning id
),
m as (
  insert into messages (id, seq, org_id, thread_id, run_id, role, content, created_at)
  overriding system value
  select r.message_id, r.seq, $3, $2, r.id, 'user', $9, r.created_at from r
  returning id
),
${acceptedEventSql('$3::uuid', '$2::uuid')}
select 1 as idx, true as thread_found,
       (select id from r) as run_id,
       (select created_at from r) as created_at,
       (select id from m) as message_id,
       (select id from t) as thread_id,
       ${EXISTING_RUN_SQL('$3', '$8')}`;

/** The same for several accepts: CREATE_RUN costs less for one alone. */
const CREATE_RUNS = `
with q as (
  select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[])
    with ordinality as q(id, thread_id, org_id, user_id, source, driver, options, idempotency_key, content, step_states, idempotency_fingerprint, model_wait_ms, idx)
),
t as (select q.idx from q join threads th on th.id = q.thread_id and th.org_id = q.org_id order by th.id for no key update of th skip locked),
n as (
  select q.*, nextval('messages_seq_seq') as seq, gen_random_uuid() as message_id
    from q where q.idx in (select idx from t)
   order by q.idx
),
r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, idempotency_fingerprint, step_states, model_wait_ms, message_id, seq)
  select n.id, n.org_id, n.thread_id, n.user_id, n.source, n.driver, n.options::jsonb, n.idempotency_key, n.idempotency_fingerprint,
         n.step_states::jsonb, n.model_wait_ms, n.message_id, n.seq
    from n
  on conflict (org_id, idempotency_key) where idempotency_key is not null do nothing
  returning id, org_id, thread_id, created_at, message_id, seq
),
m as (
  insert into messages (id, seq, org_id, thread_id, run_id, role, content, created_at)
  overriding system value
  select r.message_id, r.seq, r.org_id, r.thread_id, r.id, 'user', q.content, r.created_at
    from r join q on q.id = r.id
  returning id, run_id
),
${acceptedEventSql('r.org_id', 'r.thread_id')}
select q.idx,
       exists (select 1 from t where t.idx = q.idx) as thread_found,
       not exists (select 1 from t where t.idx = q.idx)
         and exists (select 1 from threads th where th.id = q.thread_id and th.org_id = q.org_id) as thread_held,
       r.id as run_id, r.created_at,
       (select m.id from m where m.run_id = q.id) as message_id,
       ${EXISTING_RUN_SQL('q.org_id', 'q.idempotency_key')}
  from q
  left join r on r.id = q.id`;

/** An accept's values, in the column order of CREATE_RUN (scalars) and CREATE_RUNS (arrays). */
export function acceptColumns(input: NewRun<string>): unknown[] {
  return [
    input.id,
    input.threadId,
    input.orgId,
    input.userId,
    input.source,
    input.driver,
    JSON.stringify(input.options ?? {}),
    input.idempotencyKey ?? null,
    input.content,
    JSON.stringify(Object.fromEntries(input.stages.map((stage) => [stage, 'pending']))),
    input.idempotencyFingerprint ?? null,
    input.modelWaitMs === undefined ? null : Math.min(Math.round(input.modelWaitMs), 2_147_483_647),
  ];
}

/** A repeated idempotency key: the first run again if the request is the same, refused otherwise. */
export function replayOf(input: NewRun<string>, runId: string, fingerprint: string | null): AcceptOutcome {
  return (fingerprint ?? null) === (input.idempotencyFingerprint ?? null) ? { kind: 'replay', runId } : { kind: 'idempotency_key_reused' };
}

/** Accepting a run, and reading runs back (by id, by idempotency key). */
export function createAccept<S extends string>(db: Db, pool: pg.Pool) {
  const createRow = createCoalescer<NewRun<S>, Record<string, any> | undefined>(async (items) => {
    const values = items.map(acceptColumns);
    if (values.length === 1) {
      const { rows } = await pool.query({ name: 'honeyjar-create-run', text: CREATE_RUN, values: values[0] });
      return [{ status: 'fulfilled' as const, value: rows[0] }];
    }
    // The same columns, one array each.
    const { rows } = await pool.query({ name: 'honeyjar-create-runs', text: CREATE_RUNS, values: values[0]!.map((_, c) => values.map((v) => v[c])) });
    return answersByIdx(rows, items.length, (row) => row);
  });

  return {
    /**
     * The run, its user message and its steps in one statement — only if the thread belongs to
     * the organization, and only once per idempotency key.
     */
    async create(input: NewRun<S>): Promise<AcceptOutcome> {
      const row = input.newThread
        ? (
            await pool.query({
              name: 'honeyjar-create-run-in-new-thread',
              text: CREATE_RUN_IN_NEW_THREAD,
              values: [...acceptColumns(input), input.newThread.title],
            })
          ).rows[0]
        : await createRow(input).then(async (row) =>
            row?.thread_held
              ? (await pool.query({ name: 'honeyjar-create-run-waiting', text: CREATE_RUN_WAITING, values: acceptColumns(input) })).rows[0]
              : row,
          );
      if (!row?.thread_found) return { kind: 'thread_not_found' };
      if (row.run_id) return { kind: 'created', runId: row.run_id, createdAt: row.created_at, messageId: row.message_id };
      if (row.existing_run_id) return replayOf(input, row.existing_run_id, row.existing_fingerprint);
      // The key's run was written by a concurrent request that has not committed yet; its
      // statement has, by now, so asking again finds it.
      const [again] = await db
        .select({ id: runs.id, fingerprint: runs.idempotencyFingerprint })
        .from(runs)
        .where(and(eq(runs.orgId, input.orgId), eq(runs.idempotencyKey, input.idempotencyKey!)));
      if (!again) throw new Error('idempotency conflict without a run');
      return replayOf(input, again.id, again.fingerprint);
    },

    async get(orgId: string, runId: string): Promise<Run | undefined> {
      const [row] = await db
        .select()
        .from(runs)
        .where(and(eq(runs.orgId, orgId), eq(runs.id, runId)));
      return row as Run | undefined;
    },

    async getById(runId: string): Promise<Run | undefined> {
      const [row] = await db.select().from(runs).where(eq(runs.id, runId));
      return row as Run | undefined;
    },

    async findByIdempotencyKey(orgId: string, key: string): Promise<Run | undefined> {
      const [row] = await db
        .select()
        .from(runs)
        .where(and(eq(runs.orgId, orgId), eq(runs.idempotencyKey, key)));
      return row as Run | undefined;
    },
  };
}
