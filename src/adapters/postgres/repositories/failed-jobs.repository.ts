import type pg from 'pg';
import type { FailedJobRecord } from '../../../domain/monitoring/failed-jobs-store.js';

export type { FailedJobRecord };

/*
 * Newest first. `finished_at` is set when a step fails; a failed step without it (should not
 * happen) sorts last. The run_steps_finished_idx index serves the order; org_id filters.
 */
const RECENT_FAILED = `
select s.job_id, s.run_id, r.thread_id, s.stage, s.queue, s.error, s.attempts, s.max_attempts, s.started_at, s.finished_at
  from run_steps s
  join runs r on r.id = s.run_id
 where s.org_id = $1 and s.status = 'failed'
 order by s.finished_at desc nulls last, s.job_id desc
 limit $2`;

export function createFailedJobsRepository(pool: pg.Pool) {
  return {
    /** The organization's most recently failed steps, read from PostgreSQL (BullMQ may have dropped the jobs). */
    async recent(orgId: string, limit: number): Promise<FailedJobRecord[]> {
      const { rows } = await pool.query(RECENT_FAILED, [orgId, limit]);
      return rows.map((row) => {
        const error = row.error as { code?: unknown; message?: unknown } | null;
        return {
          jobId: row.job_id as string,
          batchId: row.run_id as string,
          threadId: row.thread_id as string,
          stage: row.stage as string,
          queue: row.queue as string,
          error: error ? { code: String(error.code ?? 'unknown'), message: String(error.message ?? '') } : null,
          attempts: row.attempts as number,
          maxAttempts: row.max_attempts as number,
          startedAt: (row.started_at as Date | null) ?? null,
          finishedAt: (row.finished_at as Date | null) ?? null,
        };
      });
    },
  };
}

export type FailedJobsRepository = ReturnType<typeof createFailedJobsRepository>;
