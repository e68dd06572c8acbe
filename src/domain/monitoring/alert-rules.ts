/**
 * Alert rules: pure functions from one set of samples (taken by the evaluator) to the conditions
 * that hold now. No I/O and no clock: every sample carries what it measured, so the rules are
 * tested with synthetic samples (test/monitoring/alert-rules.test.ts).
 *
 * A rule is only *evaluated* when its data source answered: queue rules need Redis, stage and
 * provider rules need PostgreSQL, the credits rule needs a known credit balance. The evaluator
 * resolves an open alert only when its rule was evaluated and no longer holds — an alert is never
 * resolved because the data to judge it was missing.
 *
 * `workers_not_consuming` reuses the health check's judgement (src/domain/monitoring/health.ts,
 * fed by the workers' heartbeat), with its own threshold.
 *
 * Severity: `critical` for unreachable PostgreSQL or Redis, queues nobody consumes and exhausted
 * RocketReach credits; otherwise `warning`, escalated to `critical` when the value reaches twice
 * the threshold (a rate: twice the threshold or 100 %).
 */

import { judgeQueue } from './health.js';

export type AlertSeverity = 'warning' | 'critical';

export const ALERT_RULES = [
  'queue_backlog',
  'oldest_waiting_job_age',
  'stage_failure_rate',
  'stage_p95_processing_time',
  'stalled_jobs',
  'workers_not_consuming',
  'postgres_unreachable',
  'redis_unreachable',
  'provider_error_rate',
  'provider_rate_limited',
  'rocketreach_credits_low',
  'backlog_shedding',
] as const;

export type AlertRule = (typeof ALERT_RULES)[number];

/** A condition that holds now; the evaluator turns it into an open alert (one per rule and subject). */
export interface AlertCondition {
  rule: AlertRule;
  /** What it is about: a queue name, `postgres`, `redis`, a provider name. */
  subject: string;
  severity: AlertSeverity;
  value: number;
  threshold: number;
  message: string;
}

export interface AlertThresholds {
  /** The window the rate, percentile and stalled-job samples cover (only used in messages). */
  windowMs: number;
  /** waiting + delayed jobs above this. */
  queueBacklog: number;
  /** The oldest waiting job older than this. */
  oldestWaitingMs: number;
  /** Failed / finished steps of a stage above this ratio… */
  failureRate: number;
  /** …with at least this many finished steps (also the minimum for p95 and provider rates). */
  minSamples: number;
  /** A stage's p95 processing time above this. */
  p95Ms: number;
  /** Jobs seen stalled in the window above this count. */
  stalledJobs: number;
  /** Jobs waiting, none active, and no job started or finished for this long. */
  notConsumingMs: number;
  providerErrorRate: number;
  provider429Rate: number;
  /** Remaining RocketReach lookup credits below this. */
  rocketreachCredits: number;
}

export interface QueueSample {
  waiting: number;
  delayed: number;
  active: number;
  /** Paused by an operator: waiting jobs are expected, nobody should consume. */
  paused: boolean;
  /** A provider's Retry-After (or the limiter) holds the queue: waiting jobs are expected. */
  rateLimitedForMs: number;
  /** Age of the job that has waited longest, null when none waits. */
  oldestWaitingAgeMs: number | null;
  /** Since any worker process last took a job from this queue (the workers' heartbeat); null when none did lately. */
  lastFetchAgeMs: number | null;
  /** Jobs of this queue seen stalled (lock lost: a worker died or hung) in the window. */
  stalledInWindow: number;
  /** Worker connections on this queue when Redis lists clients; undefined when unknown. */
  workers?: number | undefined;
}

export interface StageSample {
  stage: string;
  /** Steps finished (completed or failed) in the window. */
  finished: number;
  failed: number;
  /** p95 of completed steps' processing time (first start to finish) in the window; null without any. */
  p95Ms: number | null;
  /** Completed steps with a processing time in the window. */
  timed: number;
}

export interface ProviderSample {
  /** Calls (attempts) made in the window. */
  calls: number;
  errors: number;
  rateLimited: number;
}

export interface AlertSamples {
  postgres: { reachable: boolean; error?: string };
  redis: { reachable: boolean; error?: string };
  /** By queue name; undefined when Redis could not be read. */
  queues?: Record<string, QueueSample>;
  /** By queue name; undefined when PostgreSQL could not be read. */
  stages?: Record<string, StageSample>;
  /** By provider (`openai`, `rocketreach`); undefined when unknown. */
  providers?: Record<string, ProviderSample>;
  /** Remaining lookup credits, when a key is configured and the balance is known. */
  rocketreach?: { creditsRemaining: number };
  /** The open runs against the backlog limits (a fresh count); undefined when it could not be read. */
  backlog?: BacklogSample;
}

export interface BacklogSample {
  /** Open runs across the system. */
  open: number;
  maxTotal: number;
  /** Organizations whose open runs reach BACKLOG_MAX_PER_ORG: their messages are refused (429). */
  organizationsAtLimit: number;
  maxPerOrg: number;
  /** Refusals by the evaluating process since it started (other processes count their own). */
  shed: { organization: number; overall: number };
}

export interface RuleEvaluation {
  conditions: AlertCondition[];
  /** Rules whose data was available: their open alerts not in `conditions` may be resolved. */
  evaluated: Set<AlertRule>;
}

export function evaluateRules(samples: AlertSamples, t: AlertThresholds): RuleEvaluation {
  const conditions: AlertCondition[] = [];
  const evaluated = new Set<AlertRule>(['postgres_unreachable', 'redis_unreachable']);
  const window = formatDuration(t.windowMs);

  if (!samples.postgres.reachable) {
    conditions.push({
      rule: 'postgres_unreachable',
      subject: 'postgres',
      severity: 'critical',
      value: 1,
      threshold: 0,
      message: `PostgreSQL is unreachable${samples.postgres.error ? `: ${samples.postgres.error}` : ''}`,
    });
  }
  if (!samples.redis.reachable) {
    conditions.push({
      rule: 'redis_unreachable',
      subject: 'redis',
      severity: 'critical',
      value: 1,
      threshold: 0,
      message: `Redis is unreachable${samples.redis.error ? `: ${samples.redis.error}` : ''}; new messages run in-process (degraded)`,
    });
  }

  if (samples.queues) {
    for (const rule of ['queue_backlog', 'oldest_waiting_job_age', 'stalled_jobs', 'workers_not_consuming'] as const) evaluated.add(rule);
    for (const [queue, q] of Object.entries(samples.queues)) {
      const backlog = q.waiting + q.delayed;
      if (backlog > t.queueBacklog) {
        conditions.push({
          rule: 'queue_backlog',
          subject: queue,
          severity: escalate(backlog, t.queueBacklog),
          value: backlog,
          threshold: t.queueBacklog,
          message: `${queue}: ${backlog} jobs waiting (${q.waiting} waiting, ${q.delayed} delayed), above ${t.queueBacklog}`,
        });
      }
      if (q.oldestWaitingAgeMs !== null && q.oldestWaitingAgeMs > t.oldestWaitingMs) {
        conditions.push({
          rule: 'oldest_waiting_job_age',
          subject: queue,
          severity: escalate(q.oldestWaitingAgeMs, t.oldestWaitingMs),
          value: Math.round(q.oldestWaitingAgeMs),
          threshold: t.oldestWaitingMs,
          message: `${queue}: the oldest waiting job has waited ${formatDuration(q.oldestWaitingAgeMs)}, above ${formatDuration(t.oldestWaitingMs)}`,
        });
      }
      if (q.stalledInWindow > t.stalledJobs) {
        conditions.push({
          rule: 'stalled_jobs',
          subject: queue,
          severity: 'warning',
          value: q.stalledInWindow,
          threshold: t.stalledJobs,
          message: `${queue}: ${q.stalledInWindow} job${q.stalledInWindow === 1 ? '' : 's'} stalled in the last ${window} (a worker died or blocked while holding ${q.stalledInWindow === 1 ? 'it' : 'them'})`,
        });
      }
      // The health check's verdict (a queue with old waiting jobs and no recent fetch by any
      // worker), except while the queue is paused or held by a limiter: then nobody should fetch.
      const verdict = judgeQueue({ queue, waiting: q.waiting, oldestWaitingAgeMs: q.oldestWaitingAgeMs, lastFetchAgeMs: q.lastFetchAgeMs }, t.notConsumingMs);
      if (verdict.status === 'degraded' && !q.paused && q.rateLimitedForMs <= 0) {
        const who =
          q.workers === 0 ? 'no worker is connected' : q.workers !== undefined ? `${q.workers} worker connection(s) but none takes jobs` : 'no worker takes jobs';
        const since = q.lastFetchAgeMs === null ? 'no job taken within the hour' : `last job taken ${formatDuration(q.lastFetchAgeMs)} ago`;
        conditions.push({
          rule: 'workers_not_consuming',
          subject: queue,
          severity: 'critical',
          value: Math.round(q.lastFetchAgeMs ?? q.oldestWaitingAgeMs ?? 0),
          threshold: t.notConsumingMs,
          message: `${queue}: ${q.waiting} jobs waiting and ${who} (${since})`,
        });
      }
    }
  }

  if (samples.stages) {
    evaluated.add('stage_failure_rate');
    evaluated.add('stage_p95_processing_time');
    for (const [queue, s] of Object.entries(samples.stages)) {
      if (s.finished >= t.minSamples && s.finished > 0) {
        const rate = s.failed / s.finished;
        if (rate > t.failureRate) {
          conditions.push({
            rule: 'stage_failure_rate',
            subject: queue,
            severity: escalateRate(rate, t.failureRate),
            value: round(rate, 4),
            threshold: t.failureRate,
            message: `${s.stage}: ${s.failed} of ${s.finished} steps failed in the last ${window} (${percent(rate)}), above ${percent(t.failureRate)}`,
          });
        }
      }
      if (s.p95Ms !== null && s.timed >= t.minSamples && s.p95Ms > t.p95Ms) {
        conditions.push({
          rule: 'stage_p95_processing_time',
          subject: queue,
          severity: escalate(s.p95Ms, t.p95Ms),
          value: Math.round(s.p95Ms),
          threshold: t.p95Ms,
          message: `${s.stage}: p95 processing time ${formatDuration(s.p95Ms)} over ${s.timed} steps in the last ${window}, above ${formatDuration(t.p95Ms)}`,
        });
      }
    }
  }

  if (samples.providers) {
    evaluated.add('provider_error_rate');
    evaluated.add('provider_rate_limited');
    for (const [provider, p] of Object.entries(samples.providers)) {
      if (p.calls < t.minSamples || p.calls === 0) continue;
      const errorRate = p.errors / p.calls;
      if (errorRate > t.providerErrorRate) {
        conditions.push({
          rule: 'provider_error_rate',
          subject: provider,
          severity: escalateRate(errorRate, t.providerErrorRate),
          value: round(errorRate, 4),
          threshold: t.providerErrorRate,
          message: `${provider}: ${p.errors} of ${p.calls} calls failed in the last ${window} (${percent(errorRate)}), above ${percent(t.providerErrorRate)}`,
        });
      }
      const limitedRate = p.rateLimited / p.calls;
      if (limitedRate > t.provider429Rate) {
        conditions.push({
          rule: 'provider_rate_limited',
          subject: provider,
          severity: escalateRate(limitedRate, t.provider429Rate),
          value: round(limitedRate, 4),
          threshold: t.provider429Rate,
          message: `${provider}: ${p.rateLimited} of ${p.calls} calls answered 429 in the last ${window} (${percent(limitedRate)}), above ${percent(t.provider429Rate)}`,
        });
      }
    }
  }

  if (samples.rocketreach) {
    evaluated.add('rocketreach_credits_low');
    const remaining = samples.rocketreach.creditsRemaining;
    if (Number.isFinite(remaining) && remaining < t.rocketreachCredits) {
      conditions.push({
        rule: 'rocketreach_credits_low',
        subject: 'rocketreach',
        severity: remaining <= 0 ? 'critical' : 'warning',
        value: remaining,
        threshold: t.rocketreachCredits,
        message: remaining <= 0 ? 'RocketReach has no lookup credits left: contact lookups fail' : `RocketReach has ${remaining} lookup credits left, below ${t.rocketreachCredits}`,
      });
    }
  }

  if (samples.backlog) {
    evaluated.add('backlog_shedding');
    const b = samples.backlog;
    const refused = `${b.shed.overall + b.shed.organization} refused by this process since it started`;
    // Subjects name no tenant: system alerts are listed to every organization's admins.
    if (b.open >= b.maxTotal) {
      conditions.push({
        rule: 'backlog_shedding',
        subject: 'overall',
        severity: 'critical',
        value: b.open,
        threshold: b.maxTotal,
        message: `${b.open} open runs reach BACKLOG_MAX_TOTAL ${b.maxTotal}: every new message is refused (503 overloaded); ${refused}`,
      });
    }
    if (b.organizationsAtLimit > 0) {
      conditions.push({
        rule: 'backlog_shedding',
        subject: 'organizations',
        severity: 'warning',
        value: b.organizationsAtLimit,
        threshold: 0,
        message: `${b.organizationsAtLimit} organization${b.organizationsAtLimit === 1 ? ' has' : 's have'} ${b.maxPerOrg} or more open runs: ${b.organizationsAtLimit === 1 ? 'its' : 'their'} new messages are refused (429 backlog_full); ${refused}`,
      });
    }
  }

  return { conditions, evaluated };
}

export function alertKey(rule: string, subject: string): string {
  return `${rule}\u0000${subject}`;
}

function escalate(value: number, threshold: number): AlertSeverity {
  return threshold > 0 && value >= threshold * 2 ? 'critical' : 'warning';
}

function escalateRate(value: number, threshold: number): AlertSeverity {
  return value >= Math.min(1, threshold * 2) ? 'critical' : 'warning';
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;
const percent = (ratio: number) => `${round(ratio * 100, 1)} %`;

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${round(ms / 1_000, 1)} s`;
  if (ms < 7_200_000) return `${round(ms / 60_000, 1)} min`;
  return `${round(ms / 3_600_000, 1)} h`;
}
