import { eq } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { runs } from '../schema.js';

/** What the reconciler and the drivers need: open runs by age, and who drives a run. */
export function createRecovery(db: Db, pool: pg.Pool) {
  return {
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
