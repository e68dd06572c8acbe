import type pg from 'pg';
import type { MeteredResource, UsageLedger } from '../../../domain/budgets/usage-budgets.js';

const COLUMN: Record<MeteredResource, string> = { llm_tokens: 'llm_tokens', rocketreach_lookups: 'rocketreach_lookups' };

/** The daily usage of each organization (org_usage), for the budgets in src/domain/budgets. */
export function createUsageRepository(pool: pg.Pool): UsageLedger {
  return {
    async used(orgId, day, resource) {
      const { rows } = await pool.query<{ used: string }>({
        name: `usage-used-${resource}`,
        text: `select ${COLUMN[resource]}::text as used from org_usage where org_id = $1 and day = $2::date`,
        values: [orgId, day],
      });
      return Number(rows[0]?.used ?? 0);
    },
    async add(orgId, day, resource, amount) {
      const column = COLUMN[resource];
      await pool.query({
        name: `usage-add-${resource}`,
        text: `insert into org_usage (org_id, day, ${column}) values ($1, $2::date, $3)
               on conflict (org_id, day) do update set ${column} = org_usage.${column} + excluded.${column}`,
        values: [orgId, day, amount],
      });
    },
  };
}
