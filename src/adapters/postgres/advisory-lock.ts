import type pg from 'pg';
import type { Lead } from '../../engine/reconciler.js';

/**
 * `lead` over a PostgreSQL session advisory lock: the pass runs in whichever process takes the
 * lock, and is skipped by the others while it is held.
 */
export function advisoryLead(pool: pg.Pool, lockId: number): Lead {
  return async (fn) => {
    const client = await pool.connect();
    try {
      const { rows } = await client.query('select pg_try_advisory_lock($1) as locked', [lockId]);
      if (!rows[0]?.locked) return undefined;
      try {
        return await fn();
      } finally {
        await client.query('select pg_advisory_unlock($1)', [lockId]);
      }
    } finally {
      client.release();
    }
  };
}

/** The reconciler's lock: one pass at a time across all processes. */
export const RECONCILER_LOCK_ID = 7_240_312;
