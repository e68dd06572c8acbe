import type pg from 'pg';
import { createCoalescer } from '../../../lib/coalescer.js';
import { dependenciesOf } from '../../../engine/dag.js';
import { jobIdFor } from '../../../engine/job-id.js';
import type { StepCompletion } from '../../../engine/ports/run-store.js';
import type { LoadedStep, StepError, StepStates } from '../../../engine/run.js';
import type { AnyCatalog, StageOf } from '../../../engine/stage.js';
import { RUN_FINISHED_CHANNEL, RUN_ENDED_IN_THREAD_CHANNEL } from '../run-finished.listener.js';
import { historySql } from '../repositories/threads.repository.js';
import { closingEventsSql, startedEventSql } from '../run-events/sql.js';
import type { RunEventBody } from '../../../engine/ports/run-events.js';
import { closingEvents } from '../../../engine/events/grammar.js';
import { answersByIdx, dependencyResultsSql, leaseFenceSql, mayRunSql, RELAXED_COMMIT, TERMINAL_SQL, WAITED_SOURCES_SQL } from './sql.js';
import type { createCompletions } from './batching.js';

/**
 * What local stages need, read without writing (their step is written once, when it ends): for
 * each requested (run, stage) — numbered by `idx` — whose run is open, whose step is not finished
 * and whose dependencies ($3: stage → the stages it depends on) have finished. Several loads share
 * the statement (see createCoalescer). Each run is read by its id (see sql.ts).
 */
const LOAD_STEPS = `
with q as (
  select q.run_id, q.stage, q.idx, q.lease, array(select jsonb_array_elements_text($3::jsonb -> q.stage)) as deps
    from unnest($1::uuid[], $2::text[], $4::text[]) with ordinality as q(run_id, stage, lease, idx)
)
select q.idx, coalesce(st.attempts, 0) + 1 as attempts, r.org_id, r.thread_id, r.options, r.step_states,
       m.id as message_id, r.seq as message_seq, m.content, null::jsonb as history,
       ${dependencyResultsSql('r.id', 'q.deps')} as results
  from q
  cross join lateral (select r.* from runs r where r.id = q.run_id limit 1) r
  join messages m on m.id = r.message_id
  left join run_steps st on st.run_id = r.id and st.stage = q.stage
 where ${mayRunSql('r', 'q.stage', 'q.deps')} and ${leaseFenceSql('r', 'q.lease')}
   and (st.status is null or st.status not in ${TERMINAL_SQL})`;

/*
 * Claims an attempt of a step that calls out ($3: the stages it depends on): writes its row on the
 * first claim, counts the attempt on later ones. Loads what the stage needs in the same statement,
 * with the thread's history when $7 > 0. With $9, appends the step's `started` event (the attempt
 * it claimed) to the run's event log under its head's lock, and notifies with it (see
 * run-events/sql.ts). It locks no run row. Relaxed commit: a lost claim is redone.
 */
const CLAIM_STEP = `
with c as (${RELAXED_COMMIT}),
run as (
  select r.id, r.org_id, r.thread_id, r.options, r.message_id, r.seq, r.created_at, r.step_states
    from (select * from runs where id = $1 limit 1) r
   where ${mayRunSql('r', '$2::text', '$3::text[]')} and ${leaseFenceSql('r', '$8::text')}
),
s as (
  insert into run_steps as st (run_id, org_id, stage, job_id, queue, max_attempts, status, attempts, created_at, started_at)
  select run.id, run.org_id, $2, $4, $5, $6, 'active', 1, run.created_at, now() from run, c where c.relaxed is not null
  on conflict (run_id, stage) do update
     set status = 'active', attempts = st.attempts + 1, started_at = coalesce(st.started_at, now())
   where st.status not in ${TERMINAL_SQL}
  returning st.attempts
),
${startedEventSql('s', '$1', '$2::text', '$9::boolean')}
select s.attempts, run.org_id, run.thread_id, run.options, run.step_states, (select count(*) from en)::int as notified,
       m.id as message_id, run.seq as message_seq, m.content, ${dependencyResultsSql('$1', '$3::text[]')} as results,
       (case when $7::int > 0 then (
          select coalesce(jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content, 'turn', h.turn) order by h.turn, (h.role = 'assistant')), '[]'::jsonb)
            from (${historySql('run.thread_id', 'run.seq', '$7::int')}) h) end) as history
  from s, run
  join messages m on m.id = run.message_id`;

/**
 * A failed attempt; the step's row is written if the attempt failed before its claim did. The run
 * row is locked first, as the step completions lock it (see batching.ts): a failure and a
 * completion of one run take their locks in the same order.
 */
const FAIL_STEP = `
with s as (
  insert into run_steps as st (run_id, org_id, stage, job_id, queue, max_attempts, status, attempts, error, created_at, finished_at)
  select r.id, r.org_id, $2, $5, $6, $7, (case when $4 then 'failed' else 'retrying' end)::step_status, 1, $3::jsonb,
         r.created_at, case when $4 then now() end
    from (select * from runs where id = $1 limit 1 for update) r
   where r.finished_at is null and r.step_states ? $2::text and ${leaseFenceSql('r', '$9::text')}
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

/**
 * Notifies the thread's channel when the run `r` that just ended leaves a later run of its thread
 * driven in-process (blocking, degraded, taken over), whose reply may be waiting for this one in
 * another process. A thread's next queue-driven run is moved on by whoever ends this one, so the
 * queued path notifies nothing (notifying commits serialise).
 */
function threadMovedSql(r: string): string {
  // A subquery with a limit, run for the row with its thread and seq as keys of the index of open
  // runs: as an EXISTS, the planner may join it to `r` by scanning every open run.
  return `select pg_notify('${RUN_ENDED_IN_THREAD_CHANNEL}', ${r}.thread_id::text) from ${r}
   where (select true from runs o where o.thread_id = ${r}.thread_id and o.finished_at is null and o.seq > ${r}.seq and o.driver = 'inline' limit 1)`;
}

/**
 * The reply, the run's end and its closing events ($7: what the engine still had buffered — the
 * reply step's start, its last tokens — then the reply step's completion, `run` completed, `end`).
 */
const COMPLETE_WITH_REPLY = `
with r as (
  update runs set status = 'completed', finished_at = now(), error = null,
                  step_states = step_states || jsonb_build_object($2::text, 'completed')
   where id = $1 and status not in ${TERMINAL_SQL} and ${leaseFenceSql('runs', '$6::text')}
  returning id, org_id, thread_id, message_id, source, seq
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
${closingEventsSql('$7::jsonb', 's', '(select id from m)')},
n as (select pg_notify('${RUN_FINISHED_CHANNEL}', id::text) from r where source in ${WAITED_SOURCES_SQL}),
t as (${threadMovedSql('r')})
select (select id from m) as message_id, (select count(*) from n)::int as notified, (select count(*) from t)::int as moved`;

/**
 * Ends an open run as failed or cancelled; its open steps (claimed or not) are cancelled with it,
 * and its closing events ($4) are appended to its event log.
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
  returning id, source, thread_id, seq
),
s as (
  update run_steps set status = 'cancelled', finished_at = now()
   where run_id = (select id from r) and status not in ${TERMINAL_SQL}
  returning 1
),
${closingEventsSql('$4::jsonb', 's')},
n as (select pg_notify('${RUN_FINISHED_CHANNEL}', id::text) from r where source in ${WAITED_SOURCES_SQL}),
t as (${threadMovedSql('r')})
select (select count(*) from r)::int as finished, (select count(*) from n)::int as notified, (select count(*) from t)::int as moved`;

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

/** A step's life: load or claim it, store its result or its failure, store the reply, end the run. */
export function createStepWrites<C extends AnyCatalog>(pool: pg.Pool, catalog: C, complete: ReturnType<typeof createCompletions<C>>) {
  type S = StageOf<C>;
  /** Each stage's dependencies, as LOAD_STEPS takes them. */
  const DEPENDENCIES_JSON = JSON.stringify(dependenciesOf(catalog));
  const loadRow = createCoalescer<{ runId: string; stage: S; lease: string | undefined }, Record<string, any> | undefined>(async (items) => {
    const { rows } = await pool.query({
      name: 'honeyjar-load-steps',
      text: LOAD_STEPS,
      values: [items.map((i) => i.runId), items.map((i) => i.stage), DEPENDENCIES_JSON, items.map((i) => i.lease ?? null)],
    });
    return answersByIdx(rows, items.length, (row) => row);
  });

  return {
    /**
     * Loads what a local stage needs, writing nothing. Undefined when the step, its run or (lost
     * completion) a stage it depends on is not in a state to run it, so a re-delivered job does
     * nothing twice.
     */
    async loadStep(runId: string, stage: S, lease?: string): Promise<LoadedStep<S> | undefined> {
      const loadedAt = new Date();
      const row = await loadRow({ runId, stage, lease });
      return row ? { ...toLoadedStep(catalog, runId, stage, row), loadedAt } : undefined;
    },

    /**
     * Claims an attempt of a step that calls out, and loads what it needs (with the thread's last
     * `historyTurns` turns); `started`: with the step's `started` event. Undefined as for loadStep.
     */
    async claimStep(
      runId: string,
      stage: S,
      options: { historyTurns?: number; lease?: string | undefined; started?: boolean } = {},
    ): Promise<LoadedStep<S> | undefined> {
      const definition = catalog[stage]!;
      const { rows } = await pool.query({
        name: 'honeyjar-claim-step',
        text: CLAIM_STEP,
        values: [
          runId,
          stage,
          definition.dependsOn,
          jobIdFor(runId, stage),
          definition.queue,
          definition.attempts,
          options.historyTurns ?? 0,
          options.lease ?? null,
          options.started === true,
        ],
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
      lease?: string,
    ): Promise<{ written: S[]; settled: S[]; states: StepStates<S> }> {
      return complete({ runId, steps, lease });
    },

    /** Records a failed attempt: `retrying` while attempts remain, else `failed` (with the run's step states). */
    async failAttempt(runId: string, stage: S, error: StepError, final: boolean, lease?: string): Promise<{ written: boolean; states: StepStates<S> | null }> {
      const definition = catalog[stage]!;
      const { rows } = await pool.query({
        name: 'honeyjar-fail-step',
        text: FAIL_STEP,
        values: [
          runId,
          stage,
          JSON.stringify(error),
          final,
          jobIdFor(runId, stage),
          definition.queue,
          definition.attempts,
          !definition.callsOut,
          lease ?? null,
        ],
      });
      return { written: rows[0]?.written === 1, states: rows[0]?.states ?? null };
    },

    /**
     * Finishes a run with its reply: the run's status, the assistant message and the LLM step's
     * result in one statement, and only while the run is open. Whatever retries or re-runs happen,
     * a run stores at most one reply. Undefined when the run was already finished (cancelled).
     * `guarded`: the reply was made by the local guard, so both messages of the exchange are marked
     * and stay out of the thread's history from then on. `events` are written before the closing
     * ones.
     */
    async completeWithReply(
      runId: string,
      stage: S,
      content: string,
      result: unknown,
      options: { guarded?: boolean; lease?: string | undefined; events?: readonly RunEventBody[] | undefined } = {},
    ): Promise<{ messageId: string } | undefined> {
      const { rows } = await pool.query({
        name: 'honeyjar-complete-with-reply',
        text: COMPLETE_WITH_REPLY,
        values: [
          runId,
          stage,
          content,
          JSON.stringify(result),
          options.guarded === true,
          options.lease ?? null,
          JSON.stringify([...(options.events ?? []), ...closingEvents('completed', { reply: { stage, result } })]),
        ],
      });
      const messageId: string | null = rows[0]?.message_id ?? null;
      return messageId ? { messageId } : undefined;
    },

    /** Ends an open run as failed or cancelled; its open steps are cancelled with it. */
    async finish(runId: string, status: 'failed' | 'cancelled', error?: StepError): Promise<boolean> {
      const { rows } = await pool.query({
        name: 'honeyjar-finish-run',
        text: FINISH_RUN,
        values: [runId, status, error ? JSON.stringify(error) : null, JSON.stringify(closingEvents(status, { error: error ?? null }))],
      });
      return rows[0]?.finished === 1;
    },
  };
}
