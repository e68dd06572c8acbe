import type pg from 'pg';
import { stageOrder } from '../../../engine/dag.js';
import type { Catalog } from '../../../engine/catalog.js';
import type { StageFigures, StageMinute, StageStatsSource, TokenFigures } from '../../../domain/monitoring/stage-stats.js';
import type { StageName } from '../../../engine/catalog.js';

/*
 * Operational figures from the system of record, always for one organization. The time range
 * selects runs by created_at (the runs_org_created_idx index), and their steps by primary key (a
 * step not claimed yet is known only from the run's step_states);
 * nothing here reads message content.
 */

/** The DAG's edges as (stage, dependency) pairs, from the one pipeline definition. */

const RANGE = `r.org_id = $1 and r.created_at >= now() - make_interval(mins => $2::int)`;

const STAGES = `
with edges(stage, dep) as (select * from unnest($3::text[], $4::text[])),
s as (
  select ss.stage, coalesce(st.status::text, ss.state) as status, coalesce(st.attempts, 0) as attempts,
         st.started_at, st.finished_at,
         greatest(r.created_at, (select max(d.finished_at) from run_steps d join edges e on e.dep = d.stage
                                  where d.run_id = r.id and e.stage = ss.stage)) as ready_at
    from runs r
   cross join lateral jsonb_each_text(r.step_states) as ss(stage, state)
    left join run_steps st on st.run_id = r.id and st.stage = ss.stage
   where ${RANGE}
)
select stage,
       count(*) filter (where status = 'completed')::int as completed,
       count(*) filter (where status = 'failed')::int as failed,
       count(*) filter (where status = 'cancelled')::int as cancelled,
       count(*) filter (where status in ('pending', 'active', 'retrying'))::int as open,
       coalesce(sum(greatest(attempts - 1, 0)), 0)::int as retries,
       percentile_cont(0.5) within group (order by extract(epoch from finished_at - started_at) * 1000)
         filter (where status in ('completed', 'failed') and started_at is not null and finished_at is not null) as processing_p50,
       percentile_cont(0.95) within group (order by extract(epoch from finished_at - started_at) * 1000)
         filter (where status in ('completed', 'failed') and started_at is not null and finished_at is not null) as processing_p95,
       percentile_cont(0.5) within group (order by greatest(0, extract(epoch from started_at - ready_at) * 1000))
         filter (where started_at is not null) as wait_p50,
       percentile_cont(0.95) within group (order by greatest(0, extract(epoch from started_at - ready_at) * 1000))
         filter (where started_at is not null) as wait_p95
  from s
 group by stage`;

const SERIES = `
select st.stage, date_trunc('minute', st.finished_at) as minute,
       count(*) filter (where st.status = 'completed')::int as completed,
       count(*) filter (where st.status = 'failed')::int as failed
  from runs r join run_steps st on st.run_id = r.id
 where ${RANGE} and st.status in ('completed', 'failed') and st.finished_at is not null
 group by 1, 2
 order by 1, 2`;

const RUNS = `select r.status::text as status, count(*)::int as n from runs r where ${RANGE} group by 1`;

const number = (field: string) =>
  `case when jsonb_typeof(st.result->'usage'->'${field}') = 'number' then (st.result->'usage'->>'${field}')::numeric else 0 end`;
const TOKENS = `
select coalesce(st.result->>'provider', 'unknown') as provider, count(*)::int as replies,
       sum(${number('prompt_tokens')})::float8 as prompt, sum(${number('completion_tokens')})::float8 as completion,
       sum(${number('total_tokens')})::float8 as total
  from runs r join run_steps st on st.run_id = r.id
 where ${RANGE} and st.stage = 'openai' and st.status = 'completed'
 group by 1`;

const ms = (value: unknown): number | null => (value === null || value === undefined ? null : Math.round(Number(value) * 10) / 10);

export function createMonitoringRepository(pool: pg.Pool, catalog: Catalog) {
  const EDGES = stageOrder(catalog).flatMap((stage) => catalog[stage].dependsOn.map((dep) => [stage, dep] as const));
  const stageStats: StageStatsSource = {
    async stages(orgId, rangeMinutes) {
      const { rows } = await pool.query(STAGES, [orgId, rangeMinutes, EDGES.map((e) => e[0]), EDGES.map((e) => e[1])]);
      return rows.map(
        (row): StageFigures => ({
          stage: row.stage as StageName,
          completed: row.completed,
          failed: row.failed,
          cancelled: row.cancelled,
          open: row.open,
          retries: row.retries,
          processingMs: { p50: ms(row.processing_p50), p95: ms(row.processing_p95) },
          waitMs: { p50: ms(row.wait_p50), p95: ms(row.wait_p95) },
        }),
      );
    },

    async stageSeries(orgId, rangeMinutes) {
      const { rows } = await pool.query(SERIES, [orgId, rangeMinutes]);
      const out: Partial<Record<StageName, StageMinute[]>> = {};
      for (const row of rows) {
        (out[row.stage as StageName] ??= []).push({ minute: (row.minute as Date).toISOString(), completed: row.completed, failed: row.failed });
      }
      return out;
    },

    async runsByStatus(orgId, rangeMinutes) {
      const { rows } = await pool.query(RUNS, [orgId, rangeMinutes]);
      const out: Record<string, number> = { completed: 0, failed: 0, cancelled: 0, processing: 0, partial: 0 };
      for (const row of rows) out[row.status] = row.n;
      return out;
    },

    async tokensByProvider(orgId, rangeMinutes) {
      const { rows } = await pool.query(TOKENS, [orgId, rangeMinutes]);
      return Object.fromEntries(
        rows.map((row): [string, TokenFigures] => [
          row.provider,
          { replies: row.replies, promptTokens: row.prompt ?? 0, completionTokens: row.completion ?? 0, totalTokens: row.total ?? 0 },
        ]),
      );
    },
  };

  return {
    stageStats,

    /** A round trip to PostgreSQL. */
    async ping(): Promise<void> {
      await pool.query('select 1');
    },

    async serverVersion(): Promise<string> {
      const { rows } = await pool.query('show server_version');
      return String(rows[0]?.server_version ?? 'unknown');
    },

    /** This process's connection pool. */
    poolUsage(): { total: number; idle: number; waiting: number; max: number } {
      return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: pool.options.max ?? 10 };
    },
  };
}

export type MonitoringRepository = ReturnType<typeof createMonitoringRepository>;
