/*
 * The statements on the hot path (accepting a message, claiming and completing a step, storing
 * the reply) are single SQL statements with data-modifying CTEs: one round trip each, atomic, and
 * safe to repeat. They are named, so each connection parses and plans them once. The rest goes
 * through Drizzle's query builder.
 *
 * Runs named in a statement's parameters are read by id alone, through a lateral subquery, and
 * tested (open, not fenced off) after the read: a join, or `finished_at is null` beside the id,
 * lets the planner pick the partial index of open runs (or a scan of the table) and read every
 * open run — thousands under load — where the primary key reads one row. A prepared statement
 * keeps the plan it was given while the tables were small, so nothing can be left to the
 * planner's estimates.
 */
export const TERMINAL_SQL = `('completed', 'failed', 'cancelled')`;

/**
 * The sources of runs a client can wait on from another request (`wait` on /comprehensive): only
 * their finish is notified, since PostgreSQL serializes the commits that carry a NOTIFY.
 */
export const WAITED_SOURCES_SQL = `('comprehensive')`;

/** Makes the statement's own transaction commit without waiting for its WAL flush. */
export const RELAXED_COMMIT = `select set_config('synchronous_commit', 'off', true) as relaxed`;

/**
 * Whether run `r` may run its step `stage` now: the run is open, the step is one of its steps and
 * not finished, and (a guard against a completion that was lost) every stage in `deps` that the
 * run includes has finished.
 */
export function mayRunSql(r: string, stage: string, deps: string): string {
  return `${r}.finished_at is null
     and ${r}.step_states ->> ${stage} not in ${TERMINAL_SQL}
     and not exists (select 1 from unnest(${deps}) as dep(stage)
                      where ${r}.step_states ? dep.stage and ${r}.step_states ->> dep.stage not in ${TERMINAL_SQL})`;
}

/**
 * Whether the caller holding `lease` (null: none) may run and store steps of run `r`: nobody took
 * the run over, the caller is the one who did, or that lease expired. A predicate on the
 * statements that already read the run row, so the fence costs no round trip.
 */
export function leaseFenceSql(r: string, lease: string): string {
  return `(${r}.lease_owner is null or ${r}.lease_owner = ${lease} or ${r}.lease_expires_at < now())`;
}

/** The completed results of a run's steps among `deps`, by stage. */
export function dependencyResultsSql(runId: string, deps: string): string {
  return `(case when cardinality(${deps}) = 0 then '{}'::jsonb
        else (select coalesce(jsonb_object_agg(d.stage, d.result) filter (where d.status = 'completed'), '{}'::jsonb)
                from run_steps d where d.run_id = ${runId} and d.stage = any(${deps})) end)`;
}

/** One answer per batched call, from the rows a statement returned for its `idx` (1-based); undefined without a row. */
export function answersByIdx<T>(
  rows: Array<Record<string, any>>,
  count: number,
  pick: (row: Record<string, any>) => T,
): Array<PromiseFulfilledResult<T | undefined>> {
  const byIdx = new Map(rows.map((row) => [Number(row.idx), pick(row)]));
  return Array.from({ length: count }, (_, i) => ({ status: 'fulfilled' as const, value: byIdx.get(i + 1) }));
}
