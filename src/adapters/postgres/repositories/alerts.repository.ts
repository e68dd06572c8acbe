import { and, desc, eq, isNotNull, isNull, type SQL } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { alerts } from '../schema.js';
import type { AlertCondition, AlertSeverity, ProviderSample, StageSample } from '../../../domain/monitoring/alert-rules.js';
import type { AlertAcknowledgement, AlertRecord, AlertStatus, AlertSummary, OutageRecord } from '../../../domain/monitoring/alerts-store.js';

export type { AlertAcknowledgement, AlertRecord, AlertStatus, AlertSummary, OutageRecord };

const columns = {
  id: alerts.id,
  rule: alerts.rule,
  subject: alerts.subject,
  severity: alerts.severity,
  status: alerts.status,
  message: alerts.message,
  value: alerts.value,
  threshold: alerts.threshold,
  firstSeenAt: alerts.firstSeenAt,
  lastSeenAt: alerts.lastSeenAt,
  resolvedAt: alerts.resolvedAt,
  acknowledgedAt: alerts.acknowledgedAt,
  acknowledgedBy: alerts.acknowledgedBy,
  acknowledgedOrg: alerts.acknowledgedOrg,
};

/*
 * Raising is one statement: insert the open alert, or — while one is open for the rule and subject
 * (the partial unique index) — update its value and last_seen_at. `inserted` tells which happened.
 */
const RAISE = `
insert into alerts (rule, subject, severity, status, message, value, threshold)
values ($1, $2, $3, 'open', $4, $5, $6)
on conflict (rule, subject) where status = 'open'
do update set severity = excluded.severity, message = excluded.message, value = excluded.value,
              threshold = excluded.threshold, last_seen_at = now()
returning *, (xmax = 0) as inserted`;

const RESOLVE = `
update alerts set status = 'resolved', resolved_at = now()
 where id = $1 and status = 'open'
returning *`;

/**
 * Every acknowledgement is recorded (who, from which organization, when); the alert row keeps the
 * first one, so a later acknowledgement by someone else is seen in the list, not instead of it.
 */
const ACKNOWLEDGE = `
with ins as (
  insert into alert_acknowledgements (alert_id, user_id, org_id)
  select id, $2, $3 from alerts where id = $1
  returning alert_id, acknowledged_at
), a as (
  update alerts set acknowledged_at = ins.acknowledged_at, acknowledged_by = $2, acknowledged_org = $3
    from ins
   where alerts.id = ins.alert_id and alerts.acknowledged_at is null
  returning alerts.*
)
select *, true as changed from a
union all
select *, false as changed from alerts where id = $1 and not exists (select 1 from a)`;

const SUMMARY = `
select count(*) filter (where status = 'open')::int as open,
       count(*) filter (where status = 'open' and acknowledged_at is not null)::int as acknowledged,
       count(*) filter (where status = 'open' and acknowledged_at is null)::int as unacknowledged,
       count(*) filter (where status = 'open' and severity = 'critical')::int as critical,
       count(*) filter (where status = 'open' and severity = 'warning')::int as warning,
       count(*) filter (where status = 'resolved')::int as resolved
  from alerts`;

/** Steps finished in the window, per queue: failures and the p95 of completed steps' processing time. */
const STAGE_STATS = `
select queue, stage,
       count(*) filter (where status in ('completed', 'failed'))::int as finished,
       count(*) filter (where status = 'failed')::int as failed,
       count(*) filter (where status = 'completed' and started_at is not null)::int as timed,
       percentile_cont(0.95) within group (order by extract(epoch from finished_at - started_at) * 1000)
         filter (where status = 'completed' and started_at is not null) as p95_ms
  from run_steps
 where finished_at >= now() - make_interval(secs => $1::float8 / 1000)
 group by queue, stage`;

/*
 * Provider calls from the steps of the provider stages: each claimed attempt is one call (a 429
 * pause re-claims too). Errors are attempts that did not complete. Steps that made no call (offline
 * or local-guard replies, skipped or cached lookups) are left out. A step's error column holds its
 * latest failure and is cleared on success, so 429s are counted on steps that are still retrying
 * (or failed) after one: a lower bound.
 */
const PROVIDER_STATS = `
with s as (
  select stage, status, attempts, error, result from run_steps
   where finished_at >= now() - make_interval(secs => $1::float8 / 1000) and stage in ('openai', 'rocketreach')
  union all
  select st.stage, st.status, st.attempts, st.error, st.result
    from runs r join run_steps st on st.run_id = r.id
   where r.finished_at is null and st.finished_at is null
     and st.stage in ('openai', 'rocketreach') and st.status in ('active', 'retrying')
)
select stage,
       coalesce(sum(attempts), 0)::int as calls,
       greatest(coalesce(sum(attempts), 0) - count(*) filter (where status in ('completed', 'active')), 0)::int as errors,
       count(*) filter (where error->>'code' = 'rate_limited')::int as rate_limited
  from s
 where status <> 'cancelled'
   and not (status = 'completed' and (
         (stage = 'openai' and result->>'provider' in ('offline', 'local-guard'))
      or (stage = 'rocketreach' and (result->>'status' in ('skipped', 'not_configured') or result->>'cached' = 'true'))))
 group by stage`;

const ALERTS_LOCK_ID = 7_240_313;

function toRecord(row: Record<string, unknown>): AlertRecord {
  return {
    id: row.id as string,
    rule: row.rule as string,
    subject: row.subject as string,
    severity: row.severity as AlertSeverity,
    status: row.status as AlertStatus,
    message: row.message as string,
    value: Number(row.value),
    threshold: Number(row.threshold),
    firstSeenAt: row.first_seen_at as Date,
    lastSeenAt: row.last_seen_at as Date,
    resolvedAt: (row.resolved_at as Date | null) ?? null,
    acknowledgedAt: (row.acknowledged_at as Date | null) ?? null,
    acknowledgedBy: (row.acknowledged_by as string | null) ?? null,
    acknowledgedOrg: (row.acknowledged_org as string | null) ?? null,
  };
}

export function createAlertsRepository(db: Db, pool: pg.Pool) {
  return {
    /** A trivial query: PostgreSQL answers (the caller bounds the wait). */
    async ping(): Promise<void> {
      await pool.query('select 1');
    },

    /**
     * Runs `fn` holding the evaluation lock, if no other process holds it (a PostgreSQL advisory
     * lock, as the reconciler does): one evaluation at a time across all processes.
     */
    async withEvaluationLock<T>(fn: () => Promise<T>): Promise<{ locked: true; value: T } | { locked: false }> {
      const client = await pool.connect();
      try {
        const { rows } = await client.query('select pg_try_advisory_lock($1) as locked', [ALERTS_LOCK_ID]);
        if (!rows[0]?.locked) return { locked: false };
        try {
          return { locked: true, value: await fn() };
        } finally {
          await client.query('select pg_advisory_unlock($1)', [ALERTS_LOCK_ID]);
        }
      } finally {
        client.release();
      }
    },

    async raise(condition: AlertCondition): Promise<{ alert: AlertRecord; inserted: boolean }> {
      const { rows } = await pool.query(RAISE, [
        condition.rule,
        condition.subject,
        condition.severity,
        condition.message,
        condition.value,
        condition.threshold,
      ]);
      return { alert: toRecord(rows[0]), inserted: rows[0].inserted === true };
    },

    async resolve(id: string): Promise<AlertRecord | undefined> {
      const { rows } = await pool.query(RESOLVE, [id]);
      return rows[0] ? toRecord(rows[0]) : undefined;
    },

    async open(): Promise<AlertRecord[]> {
      return (await db.select(columns).from(alerts).where(eq(alerts.status, 'open'))) as AlertRecord[];
    },

    async get(id: string): Promise<AlertRecord | undefined> {
      const [row] = await db.select(columns).from(alerts).where(eq(alerts.id, id));
      return row as AlertRecord | undefined;
    },

    /** Newest activity first. */
    async list(filter: { status?: AlertStatus; acknowledged?: boolean; limit: number }): Promise<AlertRecord[]> {
      const where: SQL[] = [];
      if (filter.status) where.push(eq(alerts.status, filter.status));
      if (filter.acknowledged === true) where.push(isNotNull(alerts.acknowledgedAt));
      if (filter.acknowledged === false) where.push(isNull(alerts.acknowledgedAt));
      const rows = await db
        .select(columns)
        .from(alerts)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(alerts.lastSeenAt), desc(alerts.id))
        .limit(filter.limit);
      return rows as AlertRecord[];
    },

    async summary(): Promise<AlertSummary> {
      const { rows } = await pool.query(SUMMARY);
      return rows[0] as AlertSummary;
    },

    /** Undefined for an unknown id; `changed` false when it was acknowledged before (kept as it was). */
    async acknowledge(id: string, userId: string, orgId: string): Promise<{ alert: AlertRecord; changed: boolean } | undefined> {
      const { rows } = await pool.query(ACKNOWLEDGE, [id, userId, orgId]);
      return rows[0] ? { alert: toRecord(rows[0]), changed: rows[0].changed === true } : undefined;
    },

    /** The acknowledgements of these alerts, oldest first. */
    async acknowledgementsOf(alertIds: string[]): Promise<AlertAcknowledgement[]> {
      if (alertIds.length === 0) return [];
      const { rows } = await pool.query(
        `select alert_id, user_id, org_id, acknowledged_at from alert_acknowledgements
          where alert_id = any($1::uuid[]) order by acknowledged_at, id`,
        [alertIds],
      );
      return rows.map((row) => ({ alertId: row.alert_id, userId: row.user_id ?? null, orgId: row.org_id ?? null, at: row.acknowledged_at }));
    },

    /**
     * Stores an outage seen while PostgreSQL was down, as a resolved alert. Several processes may
     * each have seen the same outage: an alert of the same rule and subject whose time span
     * overlaps (within `slackMs`) is widened instead of a second one being written.
     */
    async storeOutage(outage: OutageRecord, slackMs: number): Promise<{ alert: AlertRecord; merged: boolean }> {
      const { rows: existing } = await pool.query(
        `update alerts
            set first_seen_at = least(first_seen_at, $3), last_seen_at = greatest(last_seen_at, $4),
                resolved_at = coalesce(resolved_at, now()), status = 'resolved'
          where id = (select id from alerts
                       where rule = $1 and subject = $2
                         and first_seen_at <= $4::timestamptz + make_interval(secs => $5::float8 / 1000)
                         and coalesce(resolved_at, last_seen_at) >= $3::timestamptz - make_interval(secs => $5::float8 / 1000)
                       order by last_seen_at desc limit 1)
        returning *`,
        [outage.rule, outage.subject, outage.firstSeenAt, outage.lastSeenAt, slackMs],
      );
      if (existing[0]) return { alert: toRecord(existing[0]), merged: true };
      const { rows } = await pool.query(
        `insert into alerts (id, rule, subject, severity, status, message, value, threshold, first_seen_at, last_seen_at, resolved_at)
         values ($1, $2, $3, 'critical', 'resolved', $4, 1, 0, $5, $6, now())
         returning *`,
        [outage.id, outage.rule, outage.subject, outage.message, outage.firstSeenAt, outage.lastSeenAt],
      );
      return { alert: toRecord(rows[0]), merged: false };
    },

    /**
     * Claims the next evaluation pass: true when none ran within `minGapMs` (any process), and
     * records this one. `minGapMs` 0 always claims.
     */
    async claimPass(minGapMs: number): Promise<boolean> {
      const { rows } = await pool.query(
        `insert into alert_evaluator_state (id, last_pass_at) values (1, now())
         on conflict (id) do update set last_pass_at = now()
          where $1::float8 <= 0 or alert_evaluator_state.last_pass_at is null
             or alert_evaluator_state.last_pass_at <= now() - make_interval(secs => $1::float8 / 1000)
         returning 1`,
        [minGapMs],
      );
      return rows.length > 0;
    },

    async rocketreachState(): Promise<{ checkedAt: Date | null; credits: number | null }> {
      const { rows } = await pool.query('select rocketreach_checked_at, rocketreach_credits from alert_evaluator_state where id = 1');
      return { checkedAt: rows[0]?.rocketreach_checked_at ?? null, credits: rows[0]?.rocketreach_credits ?? null };
    },

    /** `credits` undefined keeps the last known balance (the check failed). */
    async setRocketreachState(credits: number | null | undefined): Promise<void> {
      await pool.query(
        `insert into alert_evaluator_state (id, rocketreach_checked_at, rocketreach_credits) values (1, now(), $1)
         on conflict (id) do update set rocketreach_checked_at = now(),
           rocketreach_credits = case when $2 then excluded.rocketreach_credits else alert_evaluator_state.rocketreach_credits end`,
        [credits ?? null, credits !== undefined],
      );
    },

    async stageStats(windowMs: number): Promise<Record<string, StageSample>> {
      const { rows } = await pool.query(STAGE_STATS, [windowMs]);
      return Object.fromEntries(
        rows.map((row) => [
          row.queue as string,
          {
            stage: row.stage as string,
            finished: row.finished as number,
            failed: row.failed as number,
            timed: row.timed as number,
            p95Ms: row.p95_ms === null ? null : Number(row.p95_ms),
          },
        ]),
      );
    },

    async providerStats(windowMs: number): Promise<Record<string, ProviderSample>> {
      const { rows } = await pool.query(PROVIDER_STATS, [windowMs]);
      return Object.fromEntries(
        rows.map((row) => [row.stage as string, { calls: row.calls as number, errors: row.errors as number, rateLimited: row.rate_limited as number }]),
      );
    },
  };
}

export type AlertsRepository = ReturnType<typeof createAlertsRepository>;

/** For tests and tooling: the raw `alerts` rows of a rule. */
export async function alertsOfRule(db: Db, rule: string): Promise<AlertRecord[]> {
  return (await db.select(columns).from(alerts).where(eq(alerts.rule, rule)).orderBy(desc(alerts.firstSeenAt))) as AlertRecord[];
}
