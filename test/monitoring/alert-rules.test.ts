import { describe, expect, it } from 'vitest';
import {
  ALERT_RULES,
  evaluateRules,
  type AlertSamples,
  type AlertThresholds,
  type QueueSample,
} from '../../src/domain/monitoring/alert-rules.js';
import { queueSamplesFromHealth } from '../../src/domain/monitoring/queue-samples.js';

const T: AlertThresholds = {
  windowMs: 300_000,
  queueBacklog: 100,
  oldestWaitingMs: 60_000,
  failureRate: 0.2,
  minSamples: 10,
  p95Ms: 5_000,
  stalledJobs: 0,
  notConsumingMs: 30_000,
  providerErrorRate: 0.25,
  provider429Rate: 0.1,
  rocketreachCredits: 50,
};

const idleQueue = (over: Partial<QueueSample> = {}): QueueSample => ({
  waiting: 0,
  delayed: 0,
  active: 0,
  paused: false,
  rateLimitedForMs: 0,
  oldestWaitingAgeMs: null,
  lastFetchAgeMs: 1_000,
  stalledInWindow: 0,
  workers: 1,
  ...over,
});

const healthy = (over: Partial<AlertSamples> = {}): AlertSamples => ({
  postgres: { reachable: true },
  redis: { reachable: true },
  queues: { 'rag-processing': idleQueue() },
  stages: {},
  providers: {},
  backlog: { open: 10, maxTotal: 1_000, organizationsAtLimit: 0, maxPerOrg: 100, shed: { organization: 0, overall: 0 } },
  ...over,
});

const only = (samples: AlertSamples, rule: string) => evaluateRules(samples, T).conditions.filter((c) => c.rule === rule);

describe('alert rules', () => {
  it('raise nothing on a healthy system, and every rule with data is evaluated', () => {
    const result = evaluateRules({ ...healthy(), rocketreach: { creditsRemaining: 1_000 } }, T);
    expect(result.conditions).toEqual([]);
    expect([...result.evaluated].sort()).toEqual([...ALERT_RULES].sort());
  });

  it('backlog shedding: warning while an organization is at its limit, critical at the overall one, naming no tenant', () => {
    const backlog = (over: Partial<NonNullable<AlertSamples['backlog']>>) => healthy({ backlog: { open: 10, maxTotal: 1_000, organizationsAtLimit: 0, maxPerOrg: 100, shed: { organization: 0, overall: 0 }, ...over } });
    expect(only(backlog({ open: 999 }), 'backlog_shedding')).toEqual([]);
    const [orgs] = only(backlog({ organizationsAtLimit: 2, shed: { organization: 7, overall: 0 } }), 'backlog_shedding');
    expect(orgs).toMatchObject({ subject: 'organizations', severity: 'warning', value: 2, threshold: 0 });
    expect(orgs!.message).toContain('2 organizations have 100 or more open runs');
    expect(orgs!.message).toContain('7 refused');
    const [overall] = only(backlog({ open: 1_000 }), 'backlog_shedding');
    expect(overall).toMatchObject({ subject: 'overall', severity: 'critical', value: 1_000, threshold: 1_000 });
    expect(overall!.message).toContain('503 overloaded');
    // Without a count the rule is not evaluated, so an open alert is not resolved for lack of data.
    const { backlog: _, ...withoutBacklog } = healthy();
    expect(evaluateRules(withoutBacklog, T).evaluated.has('backlog_shedding')).toBe(false);
  });

  it('queue backlog: waiting + delayed above the threshold, critical at twice it', () => {
    expect(only(healthy({ queues: { q: idleQueue({ waiting: 60, delayed: 40 }) } }), 'queue_backlog')).toEqual([]);
    const [warning] = only(healthy({ queues: { q: idleQueue({ waiting: 60, delayed: 41, lastFetchAgeMs: 0 }) } }), 'queue_backlog');
    expect(warning).toMatchObject({ subject: 'q', severity: 'warning', value: 101, threshold: 100 });
    expect(warning!.message).toContain('60 waiting, 41 delayed');
    expect(only(healthy({ queues: { q: idleQueue({ waiting: 200 }) } }), 'queue_backlog')[0]!.severity).toBe('critical');
  });

  it('oldest waiting job age', () => {
    expect(only(healthy({ queues: { q: idleQueue({ waiting: 1, oldestWaitingAgeMs: 60_000 }) } }), 'oldest_waiting_job_age')).toEqual([]);
    const [c] = only(healthy({ queues: { q: idleQueue({ waiting: 1, oldestWaitingAgeMs: 90_500.4, lastFetchAgeMs: 0 }) } }), 'oldest_waiting_job_age');
    expect(c).toMatchObject({ severity: 'warning', value: 90_500, threshold: 60_000 });
    expect(c!.message).toContain('90.5 s, above 60 s');
  });

  it('stage failure rate needs the minimum sample', () => {
    const stage = (finished: number, failed: number) => ({ 'rag-processing': { stage: 'rag', finished, failed, timed: finished - failed, p95Ms: 10 } });
    expect(only(healthy({ stages: stage(9, 9) }), 'stage_failure_rate')).toEqual([]);
    expect(only(healthy({ stages: stage(10, 2) }), 'stage_failure_rate')).toEqual([]);
    expect(only(healthy({ stages: stage(10, 3) }), 'stage_failure_rate')[0]).toMatchObject({ subject: 'rag-processing', severity: 'warning', value: 0.3, threshold: 0.2 });
    expect(only(healthy({ stages: stage(10, 4) }), 'stage_failure_rate')[0]!.severity).toBe('critical');
  });

  it('stage p95 processing time', () => {
    const stage = (p95Ms: number | null, timed = 20) => ({ 'openai-processing': { stage: 'openai', finished: timed, failed: 0, timed, p95Ms } });
    expect(only(healthy({ stages: stage(5_000) }), 'stage_p95_processing_time')).toEqual([]);
    expect(only(healthy({ stages: stage(null, 0) }), 'stage_p95_processing_time')).toEqual([]);
    expect(only(healthy({ stages: stage(60_000, 5) }), 'stage_p95_processing_time')).toEqual([]);
    expect(only(healthy({ stages: stage(7_250.6) }), 'stage_p95_processing_time')[0]).toMatchObject({ severity: 'warning', value: 7_251, threshold: 5_000 });
    expect(only(healthy({ stages: stage(10_000) }), 'stage_p95_processing_time')[0]!.severity).toBe('critical');
  });

  it('stalled jobs: any stall in the window (threshold 0)', () => {
    expect(only(healthy(), 'stalled_jobs')).toEqual([]);
    const [c] = only(healthy({ queues: { q: idleQueue({ stalledInWindow: 2 }) } }), 'stalled_jobs');
    expect(c).toMatchObject({ subject: 'q', severity: 'warning', value: 2, threshold: 0 });
    expect(c!.message).toContain('2 jobs stalled in the last 5 min');
  });

  it('workers not consuming: old waiting jobs and no recent heartbeat, unless paused or rate limited', () => {
    const stuck = idleQueue({ waiting: 3, oldestWaitingAgeMs: 45_000, lastFetchAgeMs: 40_000, workers: 2 });
    const [c] = only(healthy({ queues: { q: stuck } }), 'workers_not_consuming');
    expect(c).toMatchObject({ subject: 'q', severity: 'critical', value: 40_000, threshold: 30_000 });
    expect(c!.message).toContain('2 worker connection(s) but none takes jobs');
    expect(only(healthy({ queues: { q: { ...stuck, lastFetchAgeMs: null, workers: 0 } } }), 'workers_not_consuming')[0]!.message).toContain('no worker is connected');
    // A recent fetch, young jobs, a paused queue or a provider's Retry-After: not a worker problem.
    expect(only(healthy({ queues: { q: { ...stuck, lastFetchAgeMs: 1_000 } } }), 'workers_not_consuming')).toEqual([]);
    expect(only(healthy({ queues: { q: { ...stuck, oldestWaitingAgeMs: 10_000 } } }), 'workers_not_consuming')).toEqual([]);
    expect(only(healthy({ queues: { q: { ...stuck, paused: true } } }), 'workers_not_consuming')).toEqual([]);
    expect(only(healthy({ queues: { q: { ...stuck, rateLimitedForMs: 5_000 } } }), 'workers_not_consuming')).toEqual([]);
  });

  it('PostgreSQL and Redis unreachable are critical', () => {
    const result = evaluateRules({ postgres: { reachable: false, error: 'ECONNREFUSED' }, redis: { reachable: false } }, T);
    expect(result.conditions.map((c) => [c.rule, c.subject, c.severity])).toEqual([
      ['postgres_unreachable', 'postgres', 'critical'],
      ['redis_unreachable', 'redis', 'critical'],
    ]);
    expect(result.conditions[0]!.message).toContain('ECONNREFUSED');
    // Without data, the queue and stage rules are not evaluated: their alerts must not be resolved.
    expect(result.evaluated.has('queue_backlog')).toBe(false);
    expect(result.evaluated.has('stage_failure_rate')).toBe(false);
    expect(result.evaluated.has('rocketreach_credits_low')).toBe(false);
  });

  it('provider error rate and 429 rate, with the minimum sample', () => {
    const providers = (calls: number, errors: number, rateLimited: number) => ({ openai: { calls, errors, rateLimited } });
    expect(evaluateRules(healthy({ providers: providers(9, 9, 9) }), T).conditions).toEqual([]);
    const conditions = evaluateRules(healthy({ providers: providers(20, 6, 3) }), T).conditions;
    expect(conditions.map((c) => [c.rule, c.subject, c.severity, c.value])).toEqual([
      ['provider_error_rate', 'openai', 'warning', 0.3],
      ['provider_rate_limited', 'openai', 'warning', 0.15],
    ]);
    expect(evaluateRules(healthy({ providers: providers(20, 5, 2) }), T).conditions).toEqual([]);
    expect(only(healthy({ providers: providers(20, 10, 0) }), 'provider_error_rate')[0]!.severity).toBe('critical');
  });

  it('RocketReach credits low when known; critical when none are left; unlimited never', () => {
    expect(only(healthy({ rocketreach: { creditsRemaining: 50 } }), 'rocketreach_credits_low')).toEqual([]);
    expect(only(healthy({ rocketreach: { creditsRemaining: 49 } }), 'rocketreach_credits_low')[0]).toMatchObject({ severity: 'warning', value: 49, threshold: 50 });
    expect(only(healthy({ rocketreach: { creditsRemaining: 0 } }), 'rocketreach_credits_low')[0]!.severity).toBe('critical');
    expect(only(healthy({ rocketreach: { creditsRemaining: Number.POSITIVE_INFINITY } }), 'rocketreach_credits_low')).toEqual([]);
    expect(evaluateRules(healthy(), T).evaluated.has('rocketreach_credits_low')).toBe(false);
  });

  it('reads the health report of the queues', () => {
    const samples = queueSamplesFromHealth(
      {
        'rag-processing': {
          counts: { waiting: 2, paused: 1, prioritized: 1, delayed: 3, active: 1 },
          oldestWaitingAgeMs: 500,
          lastFetchAgeMs: 20,
          workersSeen: null,
          paused: false,
          rateLimitTtlMs: -2,
        },
      },
      { 'rag-processing': 4 },
    );
    expect(samples['rag-processing']).toEqual({
      waiting: 4,
      delayed: 3,
      active: 1,
      paused: false,
      rateLimitedForMs: 0,
      oldestWaitingAgeMs: 500,
      lastFetchAgeMs: 20,
      stalledInWindow: 4,
      workers: undefined,
    });
  });
});
