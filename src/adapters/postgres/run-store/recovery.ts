import { eq } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import type { TakenRun } from '../../../engine/ports/run-store.js';
import type { StepStates } from '../../../engine/run.js';
import { runs } from '../schema.js';

/** Runs nobody drives in-process: the queues' runs without a lease, and runs whose lease expired. */
const TAKEABLE = (r: string) => `${r}.finished_at is null and ((${r}.driver = 'queue' and ${r}.lease_owner is null) or ${r}.lease_expires_at < now())`;

/*
 * Takes over up to $3 such runs for $1, leased for $2 ms and marked in-process. Rows another
 * process is taking at the same moment are skipped (skip locked), and the condition is checked
 * again on the locked row, so each run is taken by one process.
 */
const TAKE_OVER = `
with c as (
  select id from runs r where ${TAKEABLE('r')} order by seq limit $3 for update skip locked
)
update runs r
   set driver = 'inline', lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::float8 / 1000)
  from c
 where r.id = c.id and ${TAKEABLE('r')}
returning r.id, r.org_id, r.thread_id, r.seq, r.step_states`;

const RENEW_LEASES = `
update runs set lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
 where id = any($2::uuid[]) and lease_owner = $1 and finished_at is null
returning id`;

/** A run given back unfinished goes back to the queues' care: the reconciler or the next takeover finds it. */
const RELEASE_LEASES = `
update runs set lease_owner = null, lease_expires_at = null,
                driver = case when finished_at is null then 'queue' else driver end
 where id = any($2::uuid[]) and lease_owner = $1`;

/** What the reconciler and the drivers need: open runs by age, who drives a run, and the takeover leases. */
export function createRecovery<S extends string>(db: Db, pool: pg.Pool) {
  return {
    /** Open runs older than the given age: candidates for the reconciler. */
    async openRunsOlderThan(ageMs: number, limit: number): Promise<Array<{ id: string; orgId: string; driver: string; lease?: 'held' | 'expired' }>> {
      const { rows } = await pool.query(
        `select id, org_id, driver,
                case when lease_owner is null then null when lease_expires_at < now() then 'expired' else 'held' end as lease
           from runs
          where finished_at is null and created_at < now() - make_interval(secs => $1::float8 / 1000)
          order by created_at limit $2`,
        [ageMs, limit],
      );
      return rows.map((row) => ({ id: row.id, orgId: row.org_id, driver: row.driver, ...(row.lease ? { lease: row.lease } : {}) }));
    },

    async setDriver(runId: string, driver: string): Promise<void> {
      await db.update(runs).set({ driver }).where(eq(runs.id, runId));
    },

    async takeOver(owner: string, leaseMs: number, limit: number): Promise<TakenRun<S>[]> {
      const { rows } = await pool.query({ name: 'honeyjar-take-over', text: TAKE_OVER, values: [owner, leaseMs, limit] });
      return rows
        .map((row) => ({ id: row.id, orgId: row.org_id, threadId: row.thread_id, seq: Number(row.seq), states: row.step_states as StepStates<S> }))
        .sort((a, b) => a.seq - b.seq);
    },

    async renewLeases(owner: string, runIds: readonly string[], leaseMs: number): Promise<string[]> {
      if (runIds.length === 0) return [];
      const { rows } = await pool.query(RENEW_LEASES, [owner, runIds, leaseMs]);
      return rows.map((row) => row.id as string);
    },

    async releaseLeases(owner: string, runIds: readonly string[]): Promise<void> {
      if (runIds.length === 0) return;
      await pool.query(RELEASE_LEASES, [owner, runIds]);
    },
  };
}
