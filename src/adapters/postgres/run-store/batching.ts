import type pg from 'pg';
import { createCoalescer } from '../../../lib/coalescer.js';
import { jobIdFor } from '../../../engine/job-id.js';
import type { StepCompletion } from '../../../engine/ports/run-store.js';
import type { StepStates } from '../../../engine/run.js';
import type { AnyCatalog, StageOf } from '../../../engine/stage.js';
import { stepEventsSql } from '../run-events/sql.js';
import { leaseFenceSql, RELAXED_COMMIT, TERMINAL_SQL } from './sql.js';

/*
 * Stores the results of steps, each once: a step's row is written (a local stage's first write)
 * or updated, and its run's step_states with it. The runs are locked first, in id order, so that
 * statements completing steps of the same runs (several runs per statement, see createCoalescer)
 * wait for each other instead of deadlocking. Locking the run row serialises concurrent
 * completions of a run: the second waits for the first and then sees its step_states, so exactly
 * one completion finds the next stage ready, never none. Each run is locked by its id, one after
 * the other (see sql.ts). A step's loaded_at (when a loaded,
 * unclaimed attempt started) counts that attempt. The events of each step written ($9, a jsonb
 * array per step: its `started` unless a claim wrote it, its `completed`) are appended to its
 * run's event log, under the run's head lock (taken after the runs', see run-events/sql.ts),
 * and notified with. Relaxed commit: a step's result can be computed again, and the reply's
 * (synchronous) commit flushes every earlier one.
 */
const COMPLETE_STEPS = `
with c as (${RELAXED_COMMIT}),
x as (
  select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::timestamptz[], $8::text[], $9::jsonb[])
    with ordinality as x(run_id, stage, result, job_id, queue, max_attempts, loaded_at, lease, events, idx)
),
locked as (
  select r.id, r.org_id, r.thread_id, r.seq, r.created_at, r.lease_owner, r.lease_expires_at
    from (select distinct run_id from x order by run_id) ids, c,
         lateral (select r.id, r.org_id, r.thread_id, r.seq, r.created_at, r.lease_owner, r.lease_expires_at, r.finished_at
                    from runs r where r.id = ids.run_id limit 1 for update of r) r
   where c.relaxed is not null and r.finished_at is null
),
s as (
  insert into run_steps as st (run_id, org_id, stage, job_id, queue, max_attempts, status, attempts, result, created_at, started_at, finished_at)
  select l.id, l.org_id, x.stage, x.job_id, x.queue, x.max_attempts, 'completed',
         (case when x.loaded_at is null then 0 else 1 end), x.result::jsonb, l.created_at, coalesce(x.loaded_at, now()), now()
    from x join locked l on l.id = x.run_id and ${leaseFenceSql('l', 'x.lease')}
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
   where runs.id = any($1::uuid[]) and exists (select 1 from s where s.run_id = runs.id)
  returning id, step_states
),
${stepEventsSql(
  `select x.run_id, e.body, row_number() over (partition by x.run_id order by x.idx, e.i) as i, count(*) over (partition by x.run_id) as n
     from x join s on s.run_id = x.run_id and s.stage = x.stage
    cross join lateral jsonb_array_elements(x.events) with ordinality as e(body, i)`,
  'locked',
)}
select x.run_id, x.stage,
       exists (select 1 from s where s.run_id = x.run_id and s.stage = x.stage) as written,
       (select u.step_states from u where u.id = x.run_id) as states,
       (select count(*) from sn)::int as notified
  from x`;

/**
 * Completions of steps, batched: concurrent callers share one COMPLETE_STEPS statement and its
 * commit. Each (run, stage) is written once, and of the callers completing steps of one run the
 * last with a write acts on them all (`settled`), so that each newly finished step is moved on by
 * exactly one caller.
 */
export function createCompletions<C extends AnyCatalog>(pool: pg.Pool, catalog: C) {
  type S = StageOf<C>;
  type Completion = { runId: string; steps: ReadonlyArray<StepCompletion<S>>; lease?: string | undefined };
  type Completed = { written: S[]; settled: S[]; states: StepStates<S> };
  const complete = createCoalescer<Completion, Completed>(async (items) => {
    // A (run, stage) twice in one statement would be an error; the second is a repeat anyway.
    const rows: Array<{ runId: string; lease: string | undefined } & StepCompletion<S>> = [];
    const seen = new Set<string>();
    for (const item of items) {
      for (const step of item.steps) {
        const key = `${item.runId}.${step.stage}`;
        if (seen.has(key)) continue;
        seen.add(key);
        rows.push({ runId: item.runId, lease: item.lease, ...step });
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
        rows.map((r) => r.lease ?? null),
        rows.map((r) => (r.events && r.events.length > 0 ? JSON.stringify(r.events) : null)),
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
  return complete;
}
