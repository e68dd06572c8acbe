import { and, eq } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { messages, runs } from '../schema.js';
import { dependenciesOf, stageOrder } from '../../../engine/dag.js';
import { jobIdFor, parseJobId } from '../../../engine/job-id.js';
import type { AcceptOutcome, LoadedStep, NewRun, OpenRun, Run, Step, StepError, StepStates } from '../../../engine/run.js';
import type { RunStore, StepCompletion } from '../../../engine/ports/run-store.js';
import type { AnyCatalog, StageOf } from '../../../engine/stage.js';
import { historySql } from './threads.repository.js';
import { createCoalescer } from '../../../lib/coalescer.js';
import { RUN_FINISHED_CHANNEL } from '../run-finished.listener.js';

/*
 * The statements on the hot path (accepting a message, claiming and completing a step, storing
 * the reply) are single SQL statements with data-modifying CTEs: one round trip each, atomic, and
 * safe to repeat. They are named, so each connection parses and plans them once. The rest goes
 * through Drizzle's query builder.
 */
const TERMINAL_SQL = `('completed', 'failed', 'cancelled')`;

/**
 * The sources of runs a client can wait on from another request (`wait` on /comprehensive): only
 * their finish is notified, since PostgreSQL serializes the commits that carry a NOTIFY.
 */
const WAITED_SOURCES_SQL = `('comprehensive')`;

/** Makes the statement's own transaction commit without waiting for its WAL flush. */
const RELAXED_COMMIT = `select set_config('synchronous_commit', 'off', true) as relaxed`;

/*
 * Accepting a message writes two rows: the run (with every included step as `pending` in
 * step_states) and its user message, which share one seq. Step rows come later. Only for a thread
 * of the caller's organization, and only once per idempotency key. Several accepts (numbered by
 * `idx`) share the statement and its commit (see createCoalescer); each gets its own answer.
 */
const CREATE_RUN = `
with t as (select id from threads where id = $2 and org_id = $3),
n as (select nextval('messages_seq_seq') as seq, gen_random_uuid() as message_id from t),
r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, idempotency_fingerprint, step_states, message_id, seq)
  select $1, $3, t.id, $4, $5, $6, $7::jsonb, $8, $11, $10::jsonb, n.message_id, n.seq
    from t, n
  on conflict (org_id, idempotency_key) where idempotency_key is not null do nothing
  returning id, created_at, message_id, seq
),
m as (
  insert into messages (id, seq, org_id, thread_id, run_id, role, content, created_at)
  overriding system value
  select r.message_id, r.seq, $3, $2, r.id, 'user', $9, r.created_at from r
  returning id
)
select 1 as idx, exists (select 1 from t) as thread_found,
       (select id from r) as run_id,
       (select created_at from r) as created_at,
       (select id from m) as message_id,
       ${EXISTING_RUN_SQL('$3', '$8')}`;

/** The run holding an idempotency key already, and the fingerprint of the request that used it. */
function EXISTING_RUN_SQL(orgId: string, key: string): string {
  return `(case when ${key}::text is null then null
             else (select x.id from runs x where x.org_id = ${orgId} and x.idempotency_key = ${key}) end) as existing_run_id,
       (case when ${key}::text is null then null
             else (select x.idempotency_fingerprint from runs x where x.org_id = ${orgId} and x.idempotency_key = ${key}) end) as existing_fingerprint`;
}

/*
 * CREATE_RUN for a message that starts a new thread ($2, chosen by the caller; $12 its title):
 * the thread is written only together with its run, so a refused key or a failed statement
 * leaves no thread behind. (Runs have no foreign keys; the thread's row may come second.)
 */
const CREATE_RUN_IN_NEW_THREAD = `
with r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, idempotency_fingerprint, step_states, message_id, seq)
  values ($1, $3, $2, $4, $5, $6, $7::jsonb, $8, $11, $10::jsonb, gen_random_uuid(), nextval('messages_seq_seq'))
  on conflict (org_id, idempotency_key) where idempotency_key is not null do nothing
  returning id, created_at, message_id, seq
),
t as (
  insert into threads (id, org_id, created_by, title, created_at)
  select $2, $3, $4, $12, r.created_at from r
  returning id
),
m as (
  insert into messages (id, seq, org_id, thread_id, run_id, role, content, created_at)
  overriding system value
  select r.message_id, r.seq, $3, $2, r.id, 'user', $9, r.created_at from r
  returning id
)
select 1 as idx, true as thread_found,
       (select id from r) as run_id,
       (select created_at from r) as created_at,
       (select id from m) as message_id,
       (select id from t) as thread_id,
       ${EXISTING_RUN_SQL('$3', '$8')}`;

/** The same for several accepts: CREATE_RUN costs less for one alone. */
const CREATE_RUNS = `
with q as (
  select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
    with ordinality as q(id, thread_id, org_id, user_id, source, driver, options, idempotency_key, content, step_states, idempotency_fingerprint, idx)
),
t as (select q.idx from q join threads th on th.id = q.thread_id and th.org_id = q.org_id),
n as (
  select q.*, nextval('messages_seq_seq') as seq, gen_random_uuid() as message_id
    from q where q.idx in (select idx from t)
   order by q.idx
),
r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, idempotency_fingerprint, step_states, message_id, seq)
  select n.id, n.org_id, n.thread_id, n.user_id, n.source, n.driver, n.options::jsonb, n.idempotency_key, n.idempotency_fingerprint,
         n.step_states::jsonb, n.message_id, n.seq
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
)
select q.idx,
       exists (select 1 from t where t.idx = q.idx) as thread_found,
       r.id as run_id, r.created_at,
       (select m.id from m where m.run_id = q.id) as message_id,
       ${EXISTING_RUN_SQL('q.org_id', 'q.idempotency_key')}
  from q
  left join r on r.id = q.id`;

/**
 * Whether run `r` may run its step `stage` now: the run is open, the step is one of its steps and
 * not finished, and (a guard against a completion that was lost) every stage in `deps` that the
 * run includes has finished.
 */
function mayRunSql(r: string, stage: string, deps: string): string {
  return `${r}.finished_at is null
     and ${r}.step_states ->> ${stage} not in ${TERMINAL_SQL}
     and not exists (select 1 from unnest(${deps}) as dep(stage)
                      where ${r}.step_states ? dep.stage and ${r}.step_states ->> dep.stage not in ${TERMINAL_SQL})`;
}

/** The completed results of a run's steps among `deps`, by stage. */
function dependencyResultsSql(runId: string, deps: string): string {
  return `(case when cardinality(${deps}) = 0 then '{}'::jsonb
        else (select coalesce(jsonb_object_agg(d.stage, d.result) filter (where d.status = 'completed'), '{}'::jsonb)
                from run_steps d where d.run_id = ${runId} and d.stage = any(${deps})) end)`;
}

/**
 * What local stages need, read without writing (their step is written once, when it ends): for
 * each requested (run, stage) — numbered by `idx` — whose run is open, whose step is not finished
 * and whose dependencies ($3: stage → the stages it depends on) have finished. Several loads share
 * the statement (see createCoalescer).
 */
const LOAD_STEPS = `
with q as (
  select q.run_id, q.stage, q.idx, array(select jsonb_array_elements_text($3::jsonb -> q.stage)) as deps
    from unnest($1::uuid[], $2::text[]) with ordinality as q(run_id, stage, idx)
)
select q.idx, coalesce(st.attempts, 0) + 1 as attempts, r.org_id, r.thread_id, r.options, r.step_states,
       m.id as message_id, r.seq as message_seq, m.content, null::jsonb as history,
       ${dependencyResultsSql('r.id', 'q.deps')} as results
  from q
  join runs r on r.id = q.run_id and ${mayRunSql('r', 'q.stage', 'q.deps')}
  join messages m on m.id = r.message_id
  left join run_steps st on st.run_id = r.id and st.stage = q.stage
 where st.status is null or st.status not in ${TERMINAL_SQL}`;

/*
 * Claims an attempt of a step that calls out ($3: the stages it depends on): writes its row on the
 * first claim, counts the attempt on later ones. Loads what the stage needs in the same statement,
 * with the thread's history when $7 > 0. Relaxed commit: a lost claim is redone.
 */
const CLAIM_STEP = `
with c as (${RELAXED_COMMIT}),
run as (
  select r.id, r.org_id, r.thread_id, r.options, r.message_id, r.seq, r.created_at, r.step_states
    from runs r
   where r.id = $1 and ${mayRunSql('r', '$2::text', '$3::text[]')}
),
s as (
  insert into run_steps as st (run_id, org_id, stage, job_id, queue, max_attempts, status, attempts, created_at, started_at)
  select run.id, run.org_id, $2, $4, $5, $6, 'active', 1, run.created_at, now() from run, c where c.relaxed is not null
  on conflict (run_id, stage) do update
     set status = 'active', attempts = st.attempts + 1, started_at = coalesce(st.started_at, now())
   where st.status not in ${TERMINAL_SQL}
  returning st.attempts
)
select s.attempts, run.org_id, run.thread_id, run.options, run.step_states,
       m.id as message_id, run.seq as message_seq, m.content, ${dependencyResultsSql('$1', '$3::text[]')} as results,
       (case when $7::int > 0 then (
          select coalesce(jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content, 'turn', h.turn) order by h.turn, (h.role = 'assistant')), '[]'::jsonb)
            from (${historySql('run.thread_id', 'run.seq', '$7::int')}) h) end) as history
  from s, run
  join messages m on m.id = run.message_id`;

/*
 * Stores the results of steps, each once: a step's row is written (a local stage's first write)
 * or updated, and its run's step_states with it. The runs are locked first, in id order, so that
 * statements completing steps of the same runs (several runs per statement, see createCoalescer)
 * wait for each other instead of deadlocking. Locking the run row serialises concurrent
 * completions of a run: the second waits for the first and then sees its step_states, so exactly
 * one completion finds the next stage ready, never none. A step's loaded_at (when a loaded,
 * unclaimed attempt started) counts that attempt. Relaxed commit: a step's result can be computed
 * again, and the reply's (synchronous) commit flushes every earlier one.
 */
const COMPLETE_STEPS = `
with c as (${RELAXED_COMMIT}),
x as (
  select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::timestamptz[])
    as x(run_id, stage, result, job_id, queue, max_attempts, loaded_at)
),
locked as (
  select r.id, r.org_id, r.created_at
    from runs r, c
   where r.id in (select run_id from x) and r.finished_at is null and c.relaxed is not null
   order by r.id
     for update of r
),
s as (
  insert into run_steps as st (run_id, org_id, stage, job_id, queue, max_attempts, status, attempts, result, created_at, started_at, finished_at)
  select l.id, l.org_id, x.stage, x.job_id, x.queue, x.max_attempts, 'completed',
         (case when x.loaded_at is null then 0 else 1 end), x.result::jsonb, l.created_at, coalesce(x.loaded_at, now()), now()
    from x join locked l on l.id = x.run_id
  on conflict (run_id, stage) do update
     set status = 'completed', result = excluded.result, error = null, finished_at = now(),
         attempts = st.attempts + excluded.attempts,
         started_at = coalesce(st.started_at, excluded.started_at)
   where st.status not in ${TERMINAL_SQL}
  returning st.run_id, st.stage
),
u as (
  update runs
     set status = case when status = 'processing' then 'partial'::run_status else status end,
         step_states = step_states || (select jsonb_object_agg(s.stage, 'completed') from s where s.run_id = runs.id)
   where id in (select run_id from s)
  returning id, step_states
)
select x.run_id, x.stage,
       exists (select 1 from s where s.run_id = x.run_id and s.stage = x.stage) as written,
       (select u.step_states from u where u.id = x.run_id) as states
  from x`;

/** A failed attempt; the step's row is written if the attempt failed before its claim did. */
const FAIL_STEP = `
with s as (
  insert into run_steps as st (run_id, org_id, stage, job_id, queue, max_attempts, status, attempts, error, created_at, finished_at)
  select r.id, r.org_id, $2, $5, $6, $7, (case when $4 then 'failed' else 'retrying' end)::step_status, 1, $3::jsonb,
         r.created_at, case when $4 then now() end
    from runs r
   where r.id = $1 and r.finished_at is null and r.step_states ? $2::text
  on conflict (run_id, stage) do update
     set status = excluded.status, error = excluded.error,
         finished_at = case when $4 then now() else st.finished_at end,
         -- A claimed attempt was counted by its claim; a loaded one (a local stage) is counted here.
         attempts = case when $8 then st.attempts + 1 else st.attempts end
   where st.status not in ${TERMINAL_SQL}
  returning st.stage
),
r as (
  update runs set step_states = step_states || jsonb_build_object($2::text, 'failed')
   where id = $1 and $4 and exists (select 1 from s)
  returning step_states
)
select (select count(*) from s)::int as written, (select step_states from r) as states`;

const COMPLETE_WITH_REPLY = `
with r as (
  update runs set status = 'completed', finished_at = now(), error = null,
                  step_states = step_states || jsonb_build_object($2::text, 'completed')
   where id = $1 and status not in ${TERMINAL_SQL}
  returning id, org_id, thread_id, message_id, source
),
m as (
  insert into messages (org_id, thread_id, run_id, role, content, guarded)
  select org_id, thread_id, id, 'assistant', $3, $5::boolean from r
  on conflict do nothing
  returning id
),
g as (
  update messages set guarded = true
   where $5::boolean and id = (select message_id from r) and exists (select 1 from m)
  returning 1
),
s as (
  update run_steps
     set status = 'completed', error = null, finished_at = now(),
         result = $4::jsonb || jsonb_build_object('assistantMessageId', (select id from m))
   where run_id = $1 and stage = $2 and exists (select 1 from m)
  returning 1
),
n as (select pg_notify('${RUN_FINISHED_CHANNEL}', id::text) from r where source in ${WAITED_SOURCES_SQL})
select (select id from m) as message_id, (select count(*) from n)::int as notified`;

/**
 * Ends an open run as failed or cancelled; its open steps (claimed or not) are cancelled with it.
 * Like the reply statement, it notifies the run's waiters in every process at commit (for the
 * sources that can have any).
 */
const FINISH_RUN = `
with r as (
  update runs
     set status = $2::run_status, finished_at = now(), error = $3::jsonb,
         step_states = (select coalesce(jsonb_object_agg(k, case when v in ${TERMINAL_SQL} then v else 'cancelled' end), '{}'::jsonb)
                          from jsonb_each_text(step_states) as e(k, v))
   where id = $1 and status not in ${TERMINAL_SQL}
  returning id, source
),
s as (
  update run_steps set status = 'cancelled', finished_at = now()
   where run_id = (select id from r) and status not in ${TERMINAL_SQL}
  returning 1
),
n as (select pg_notify('${RUN_FINISHED_CHANNEL}', id::text) from r where source in ${WAITED_SOURCES_SQL})
select (select count(*) from r)::int as finished, (select count(*) from n)::int as notified`;

/** Runs with their step rows (those written so far), for the views that list every step. */
const RUN_STEPS = `
select r.id as run_id, r.created_at as run_created_at, r.step_states,
       r.org_id, r.thread_id, r.user_id, r.status as run_status, r.source, r.driver, r.options,
       r.idempotency_key, r.error as run_error, r.finished_at as run_finished_at,
       st.stage, st.job_id, st.queue, st.status, st.attempts, st.max_attempts, st.result, st.error,
       st.created_at, st.started_at, st.finished_at
  from runs r
  left join run_steps st on st.run_id = r.id
 where r.id = any($1::uuid[]) and ($2::uuid is null or r.org_id = $2)`;

/** For each (thread, seq): whether a run earlier in that thread (by message order) is still open. */
const EARLIER_OPEN_RUNS = `
select q.idx, exists (select 1 from runs r where r.thread_id = q.thread_id and r.finished_at is null and r.seq < q.seq) as waiting
  from unnest($1::uuid[], $2::bigint[]) with ordinality as q(thread_id, seq, idx)`;

/** For each thread, its oldest open run: the one whose reply may be produced next. */
const NEXT_OPEN_RUNS = `
select q.idx, n.id, n.org_id, n.driver, n.step_states
  from unnest($1::uuid[]) with ordinality as q(thread_id, idx)
 cross join lateral (select id, org_id, driver, step_states from runs r
                      where r.thread_id = q.thread_id and r.finished_at is null order by r.seq limit 1) n`;

/** An accept's values, in the column order of CREATE_RUN (scalars) and CREATE_RUNS (arrays). */
function acceptColumns(input: NewRun<string>): unknown[] {
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
  ];
}

/** A repeated idempotency key: the first run again if the request is the same, refused otherwise. */
function replayOf(input: NewRun<string>, runId: string, fingerprint: string | null): AcceptOutcome {
  return (fingerprint ?? null) === (input.idempotencyFingerprint ?? null) ? { kind: 'replay', runId } : { kind: 'idempotency_key_reused' };
}

/** One answer per batched call, from the rows a statement returned for its `idx` (1-based); undefined without a row. */
function answersByIdx<T>(rows: Array<Record<string, any>>, count: number, pick: (row: Record<string, any>) => T): Array<PromiseFulfilledResult<T | undefined>> {
  const byIdx = new Map(rows.map((row) => [Number(row.idx), pick(row)]));
  return Array.from({ length: count }, (_, i) => ({ status: 'fulfilled' as const, value: byIdx.get(i + 1) }));
}

function toLoadedStep<S extends string>(catalog: AnyCatalog, runId: string, stage: S, row: Record<string, any>): LoadedStep<S> {
  return {
    runId,
    stage,
    attempts: row.attempts,
    maxAttempts: catalog[stage]!.attempts,
    orgId: row.org_id,
    threadId: row.thread_id,
    options: row.options,
    states: row.step_states,
    messageId: row.message_id,
    messageSeq: Number(row.message_seq),
    content: row.content,
    results: row.results,
    ...(row.history ? { history: row.history } : {}),
  };
}

/**
 * The PostgreSQL run store, for the stages of `catalog` (their dependencies, queues and attempts
 * are read from it, never from a module-level constant).
 */
export function createRunsRepository<C extends AnyCatalog>(db: Db, pool: pg.Pool, catalog: C): RunStore<StageOf<C>> {
  type S = StageOf<C>;
  const order = stageOrder(catalog);
  /** Each stage's dependencies, as LOAD_STEPS takes them. */
  const DEPENDENCIES_JSON = JSON.stringify(dependenciesOf(catalog));
  const loadRow = createCoalescer<{ runId: string; stage: S }, Record<string, any> | undefined>(async (items) => {
    const { rows } = await pool.query({
      name: 'honeyjar-load-steps',
      text: LOAD_STEPS,
      values: [items.map((i) => i.runId), items.map((i) => i.stage), DEPENDENCIES_JSON],
    });
    return answersByIdx(rows, items.length, (row) => row);
  });

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

  type Completion = { runId: string; steps: ReadonlyArray<StepCompletion<S>> };
  type Completed = { written: S[]; settled: S[]; states: StepStates<S> };
  const complete = createCoalescer<Completion, Completed>(async (items) => {
    // A (run, stage) twice in one statement would be an error; the second is a repeat anyway.
    const rows: Array<{ runId: string } & StepCompletion<S>> = [];
    const seen = new Set<string>();
    for (const item of items) {
      for (const step of item.steps) {
        const key = `${item.runId}.${step.stage}`;
        if (seen.has(key)) continue;
        seen.add(key);
        rows.push({ runId: item.runId, ...step });
      }
    }
    const { rows: out } = await pool.query({
      name: 'honeyjar-complete-steps',
      text: COMPLETE_STEPS,
      values: [
        rows.map((r) => r.runId),
        rows.map((r) => r.stage),
        rows.map((r) => JSON.stringify(r.result)),
        rows.map((r) => jobIdFor(r.runId, r.stage)),
        rows.map((r) => catalog[r.stage]!.queue),
        rows.map((r) => catalog[r.stage]!.attempts),
        rows.map((r) => r.loadedAt ?? null),
      ],
    });
    const written = new Set<string>();
    const states = new Map<string, StepStates<S>>();
    for (const row of out) {
      if (row.written) written.add(`${row.run_id}.${row.stage}`);
      if (row.states) states.set(row.run_id, row.states);
    }
    // A repeat of a step in the same statement is not its caller's write.
    const claimed = new Set<string>();
    const mine = items.map((item) =>
      item.steps
        .map((step) => step.stage)
        .filter((stage) => {
          const key = `${item.runId}.${stage}`;
          if (!written.has(key) || claimed.has(key)) return false;
          claimed.add(key);
          return true;
        }),
    );
    // Of the callers completing steps of one run, the last one with a write acts on them all.
    const lead = new Map<string, number>();
    const writtenOfRun = new Map<string, S[]>();
    items.forEach((item, i) => {
      if (mine[i]!.length === 0) return;
      lead.set(item.runId, i);
      writtenOfRun.set(item.runId, [...(writtenOfRun.get(item.runId) ?? []), ...mine[i]!]);
    });
    return items.map((item, i) => {
      const value: Completed = {
        written: mine[i]!,
        settled: lead.get(item.runId) === i ? writtenOfRun.get(item.runId)! : [],
        states: states.get(item.runId) ?? {},
      };
      return { status: 'fulfilled' as const, value };
    });
  });

  /**
   * The steps of the given runs (of one organization, unless null): a claimed step from its row,
   * one not claimed yet from the run's step_states, with the job id, queue and attempts it will have.
   */
  async function stepsOf(runIds: string[], orgId: string | null): Promise<Map<string, Step<S>[]>> {
    return new Map([...(await runsWithSteps(runIds, orgId))].map(([id, { steps }]) => [id, steps]));
  }

  async function runsWithSteps(runIds: string[], orgId: string | null): Promise<Map<string, { run: Run; steps: Step<S>[] }>> {
    const { rows } = await pool.query({ name: 'honeyjar-run-steps', text: RUN_STEPS, values: [runIds, orgId] });
    const byRun = new Map<string, { record: Run; createdAt: Date; states: StepStates<S>; rows: Map<string, Step<S>> }>();
    for (const row of rows) {
      let run = byRun.get(row.run_id);
      if (!run) {
        const record: Run = {
          id: row.run_id,
          orgId: row.org_id,
          threadId: row.thread_id,
          userId: row.user_id,
          status: row.run_status,
          source: row.source,
          driver: row.driver,
          options: row.options,
          idempotencyKey: row.idempotency_key,
          error: row.run_error,
          createdAt: row.run_created_at,
          finishedAt: row.run_finished_at,
        };
        run = { record, createdAt: row.run_created_at, states: row.step_states, rows: new Map() };
        byRun.set(row.run_id, run);
      }
      if (row.stage) {
        run.rows.set(row.stage, {
          runId: row.run_id,
          stage: row.stage,
          jobId: row.job_id,
          queue: row.queue,
          status: row.status,
          attempts: row.attempts,
          maxAttempts: row.max_attempts,
          result: row.result,
          error: row.error,
          createdAt: row.created_at,
          startedAt: row.started_at,
          finishedAt: row.finished_at,
        });
      }
    }
    const result = new Map<string, { run: Run; steps: Step<S>[] }>();
    for (const [runId, run] of byRun) {
      const steps = order.filter((stage) => run.states[stage] !== undefined).map(
        (stage): Step<S> =>
          run.rows.get(stage) ?? {
            runId,
            stage,
            jobId: jobIdFor(runId, stage),
            queue: catalog[stage]!.queue,
            status: run.states[stage]!,
            attempts: 0,
            maxAttempts: catalog[stage]!.attempts,
            result: null,
            error: null,
            createdAt: run.createdAt,
            startedAt: null,
            finishedAt: null,
          },
      );
      result.set(runId, { run: run.record, steps });
    }
    return result;
  }

  return {
    /**
     * The run, its user message and its steps in one statement — only if the thread belongs to
     * the organization, and only once per idempotency key.
     */
    async create(input: NewRun<S>): Promise<AcceptOutcome> {
      const row = input.newThread
        ? (await pool.query({ name: 'honeyjar-create-run-in-new-thread', text: CREATE_RUN_IN_NEW_THREAD, values: [...acceptColumns(input), input.newThread.title] })).rows[0]
        : await createRow(input);
      if (!row || !row.thread_found) return { kind: 'thread_not_found' };
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
      const [row] = await db.select().from(runs).where(and(eq(runs.orgId, orgId), eq(runs.id, runId)));
      return row as Run | undefined;
    },

    async getById(runId: string): Promise<Run | undefined> {
      const [row] = await db.select().from(runs).where(eq(runs.id, runId));
      return row as Run | undefined;
    },

    async findByIdempotencyKey(orgId: string, key: string): Promise<Run | undefined> {
      const [row] = await db.select().from(runs).where(and(eq(runs.orgId, orgId), eq(runs.idempotencyKey, key)));
      return row as Run | undefined;
    },

    /** The organization's run with every step, in one statement (what a batch document shows). */
    async getWithSteps(orgId: string, runId: string): Promise<{ run: Run; steps: Step<S>[] } | undefined> {
      return (await runsWithSteps([runId], orgId)).get(runId);
    },

    /** Every step of the run, claimed or not, in pipeline order. */
    async steps(runId: string): Promise<Step<S>[]> {
      return (await stepsOf([runId], null)).get(runId) ?? [];
    },

    /** Steps by job id (`<runId>.<stage>`), only of the organization's runs; unknown ids are left out. */
    async stepsByJobIds(orgId: string, jobIds: string[]): Promise<Step<S>[]> {
      const wanted = new Map<string, Set<string>>();
      for (const jobId of jobIds) {
        const parsed = parseJobId(catalog, jobId);
        if (!parsed) continue;
        const stages = wanted.get(parsed.runId) ?? new Set<string>();
        stages.add(parsed.stage);
        wanted.set(parsed.runId, stages);
      }
      if (wanted.size === 0) return [];
      const byRun = await stepsOf([...wanted.keys()], orgId);
      return [...byRun.values()].flat().filter((step) => wanted.get(step.runId)?.has(step.stage));
    },

    async userMessage(runId: string): Promise<{ id: string; seq: number; content: string; threadId: string } | undefined> {
      const { rows } = await pool.query({
        name: 'honeyjar-user-message',
        text: `select m.id, r.seq, m.content, r.thread_id from runs r join messages m on m.id = r.message_id where r.id = $1`,
        values: [runId],
      });
      const row = rows[0];
      return row ? { id: row.id, seq: Number(row.seq), content: row.content, threadId: row.thread_id } : undefined;
    },

    async assistantMessage(runId: string): Promise<{ id: string; content: string } | undefined> {
      const [row] = await db
        .select({ id: messages.id, content: messages.content })
        .from(messages)
        .where(and(eq(messages.runId, runId), eq(messages.role, 'assistant')));
      return row;
    },

    /**
     * Loads what a local stage needs, writing nothing. Undefined when the step, its run or (lost
     * completion) a stage it depends on is not in a state to run it, so a re-delivered job does
     * nothing twice.
     */
    async loadStep(runId: string, stage: S): Promise<LoadedStep<S> | undefined> {
      const loadedAt = new Date();
      const row = await loadRow({ runId, stage });
      return row ? { ...toLoadedStep(catalog, runId, stage, row), loadedAt } : undefined;
    },

    /**
     * Claims an attempt of a step that calls out, and loads what it needs (with the thread's last
     * `historyTurns` turns). Undefined as for loadStep.
     */
    async claimStep(runId: string, stage: S, options: { historyTurns?: number } = {}): Promise<LoadedStep<S> | undefined> {
      const definition = catalog[stage]!;
      const { rows } = await pool.query({
        name: 'honeyjar-claim-step',
        text: CLAIM_STEP,
        values: [runId, stage, definition.dependsOn, jobIdFor(runId, stage), definition.queue, definition.attempts, options.historyTurns ?? 0],
      });
      return rows[0] ? toLoadedStep(catalog, runId, stage, rows[0]) : undefined;
    },

    /**
     * Stores the results of steps of one run, each once (the run becomes `partial` with its first).
     * Answers which of them were written, the states of all the run's steps, and `settled`: the
     * finished steps whose dependents this caller is to move along — its own written steps and
     * those of other callers completing the same run in the same statement (who get none), so
     * that each transition is acted on once. `loadedAt`: when a loaded attempt (see loadStep)
     * started, counted here.
     */
    async completeSteps(
      runId: string,
      steps: ReadonlyArray<StepCompletion<S>>,
    ): Promise<{ written: S[]; settled: S[]; states: StepStates<S> }> {
      return complete({ runId, steps });
    },

    /** Records a failed attempt: `retrying` while attempts remain, else `failed` (with the run's step states). */
    async failAttempt(runId: string, stage: S, error: StepError, final: boolean): Promise<{ written: boolean; states: StepStates<S> | null }> {
      const definition = catalog[stage]!;
      const { rows } = await pool.query({
        name: 'honeyjar-fail-step',
        text: FAIL_STEP,
        values: [runId, stage, JSON.stringify(error), final, jobIdFor(runId, stage), definition.queue, definition.attempts, !definition.callsOut],
      });
      return { written: rows[0]?.written === 1, states: rows[0]?.states ?? null };
    },

    /**
     * Finishes a run with its reply: the run's status, the assistant message and the LLM step's
     * result in one statement, and only while the run is open. Whatever retries or re-runs happen,
     * a run stores at most one reply. Undefined when the run was already finished (cancelled).
     * `guarded`: the reply was made by the local guard, so both messages of the exchange are marked
     * and stay out of the thread's history from then on.
     */
    async completeWithReply(
      runId: string,
      stage: S,
      content: string,
      result: unknown,
      options: { guarded?: boolean } = {},
    ): Promise<{ messageId: string } | undefined> {
      const { rows } = await pool.query({
        name: 'honeyjar-complete-with-reply',
        text: COMPLETE_WITH_REPLY,
        values: [runId, stage, content, JSON.stringify(result), options.guarded === true],
      });
      const messageId: string | null = rows[0]?.message_id ?? null;
      return messageId ? { messageId } : undefined;
    },

    /** Ends an open run as failed or cancelled; its open steps are cancelled with it. */
    async finish(runId: string, status: 'failed' | 'cancelled', error?: StepError): Promise<boolean> {
      const { rows } = await pool.query({ name: 'honeyjar-finish-run', text: FINISH_RUN, values: [runId, status, error ? JSON.stringify(error) : null] });
      return rows[0]?.finished === 1;
    },

    async hasEarlierOpenRun(threadId: string, messageSeq: number): Promise<boolean> {
      return earlierOpenRun({ threadId, seq: messageSeq });
    },

    /** The thread's oldest open run, with its step states. */
    async nextOpenRun(threadId: string): Promise<OpenRun<S> | undefined> {
      return nextOpenRunOf(threadId);
    },

    /** Open runs older than the given age: candidates for the reconciler. */
    async openRunsOlderThan(ageMs: number, limit: number): Promise<Array<{ id: string; orgId: string; driver: string }>> {
      const { rows } = await pool.query(
        `select id, org_id, driver from runs
          where finished_at is null and created_at < now() - make_interval(secs => $1::float8 / 1000)
          order by created_at limit $2`,
        [ageMs, limit],
      );
      return rows.map((row) => ({ id: row.id, orgId: row.org_id, driver: row.driver }));
    },

    async setDriver(runId: string, driver: string): Promise<void> {
      await db.update(runs).set({ driver }).where(eq(runs.id, runId));
    },
  };
}

export type RunsRepository = RunStore;
