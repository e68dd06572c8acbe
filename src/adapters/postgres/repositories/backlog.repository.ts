import type pg from 'pg';
import type { BacklogReading, BacklogSource } from '../../../domain/chat/backlog.js';

/*
 * The backlog as every process sees it, in one round trip: the open runs per organization (the
 * partial index runs_open_thread_idx holds only open runs), and the replies stored since the last
 * reading (run_steps_finished_idx: the reply stage's step finishes with its run). A step's
 * finished_at is its statement's start, and a loaded database may take a while to commit it, so
 * a finish can become visible after a reading whose interval it belongs to. Each reading
 * therefore counts OVERLAP_MS before its `since` again, and says how many of its own finishes lie
 * in its last OVERLAP_MS (`recent`), which the next reading subtracts: a finish committed up to
 * OVERLAP_MS late is counted once, by the reading that first sees it.
 *
 * The same rows give the estimate's calibration: for the runs that finished in (`since`, `until`]
 * and carry the model's estimate of their wait (runs.model_wait_ms, written with the run), their
 * number and the mean of ln(accept-to-finish ÷ estimate). A finish committed late is left out of
 * it rather than counted twice: one sample less.
 */
const OVERLAP_MS = 2_000;

const READ = `
with bound as (select now() as until),
open as (select org_id, count(*)::int as n from runs where finished_at is null group by org_id),
done as (
  select count(*)::int as finished,
         count(*) filter (where st.finished_at > bound.until - make_interval(secs => ${OVERLAP_MS / 1000}))::int as recent,
         min(extract(epoch from st.finished_at - r.created_at) * 1000) as fastest_ms,
         count(*) filter (where r.model_wait_ms > 0 and st.finished_at > $1::timestamptz)::int as calibrated,
         avg(ln(greatest(extract(epoch from st.finished_at - r.created_at) * 1000, 1) / r.model_wait_ms))
           filter (where r.model_wait_ms > 0 and st.finished_at > $1::timestamptz) as mean_log_ratio
    from run_steps st join runs r on r.id = st.run_id, bound
   where st.finished_at > coalesce($1::timestamptz, bound.until) - make_interval(secs => ${OVERLAP_MS / 1000})
     and st.finished_at <= bound.until
     and st.stage = $2 and st.status in ('completed', 'failed')
)
select (select until from bound) as until,
       (select finished from done) as finished,
       (select recent from done) as recent,
       (select fastest_ms from done) as fastest_ms,
       (select calibrated from done) as calibrated,
       (select mean_log_ratio from done) as mean_log_ratio,
       coalesce((select json_agg(json_build_array(org_id, n)) from open), '[]'::json) as open`;

/** The open runs accepted before a message (its seq), of its organization and of all. */
const AHEAD_OF = `
select count(*) filter (where org_id = $1)::int as organization, count(*)::int as overall
  from runs where finished_at is null and seq < $2`;

/** Open runs per organization across the system. */
const OPEN_BY_ORG = 'select org_id, count(*)::int as n from runs where finished_at is null group by org_id';

export function createBacklogRepository(pool: pg.Pool, replyStage: string): BacklogSource & { openByOrg(): Promise<Map<string, number>> } {
  return {
    async read(since) {
      const { rows } = await pool.query({ name: 'honeyjar-backlog-read', text: READ, values: [since ?? null, replyStage] });
      const row = rows[0]!;
      const open = row.open as Array<[string, number]>;
      const reading: BacklogReading = {
        openByOrg: new Map(open),
        finished: since ? Number(row.finished ?? 0) : 0,
        recent: Number(row.recent ?? 0),
        fastestMs: row.fastest_ms === null || row.fastest_ms === undefined ? null : Number(row.fastest_ms),
        until: row.until as Date,
        calibration: {
          runs: since ? Number(row.calibrated ?? 0) : 0,
          meanLogRatio: row.mean_log_ratio === null || row.mean_log_ratio === undefined ? null : Number(row.mean_log_ratio),
        },
      };
      return reading;
    },

    async aheadOf(orgId, seq) {
      const { rows } = await pool.query(AHEAD_OF, [orgId, seq]);
      return { organization: rows[0]?.organization ?? 0, overall: rows[0]?.overall ?? 0 };
    },

    async openByOrg() {
      const { rows } = await pool.query(OPEN_BY_ORG);
      return new Map(rows.map((row) => [row.org_id as string, row.n as number]));
    },
  };
}
