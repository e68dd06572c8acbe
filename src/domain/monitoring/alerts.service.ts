import { createPeriodicTask } from '../../lib/periodic.js';
import { createHmac, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Coordination } from '../../engine/ports/coordination.js';
import type { Logger } from 'pino';
import type { AlertsConfig } from '../../config.js';
import type { AlertRecord, AlertsStore, OutageRecord } from './alerts-store.js';
import { alertKey, evaluateRules, type AlertCondition, type AlertRule, type AlertSamples, type BacklogSample, type QueueSample } from './alert-rules.js';
import { queueSamplesFromHealth, type QueueHealthDetail } from './queue-samples.js';
import type { StalledJobs } from './stalled-jobs.js';

const PROBE_TIMEOUT_MS = 2_000;
const SAMPLE_TIMEOUT_MS = 5_000;
const ACCOUNT_TIMEOUT_MS = 10_000;
const WEBHOOK_ATTEMPTS = 2;
const WEBHOOK_RETRY_DELAY_MS = 500;
const MAX_QUEUED_WEBHOOKS = 1_000;

export type WebhookEvent = 'raised' | 'resolved';

export interface EvaluationResult {
  /** `skipped`: another process holds the lock, or (scheduled passes) one ran within the interval. */
  status: 'evaluated' | 'skipped' | 'postgres_down';
  conditions: AlertCondition[];
  /** Alerts opened by this pass. */
  raised: AlertRecord[];
  /** Alerts already open whose value and last_seen_at this pass refreshed. */
  updated: AlertRecord[];
  resolved: AlertRecord[];
}

export interface AlertsServiceDeps {
  repository: AlertsStore;
  /** The pipeline's queue names (the catalog's), whose stalled jobs are counted. */
  queues: readonly string[];
  /**
   * Every queue's counts, oldest waiting job and workers' heartbeat, by queue name — the health
   * service's detailed report (src/monitoring/health.service.ts). Rejects when Redis cannot be read.
   */
  queueHealth: () => Promise<Readonly<Record<string, QueueHealthDetail>>>;
  /** The coordination store (Redis, or PostgreSQL with the queues there): pinged, and where the outage notice is claimed. */
  coordination: Coordination;
  stalled: StalledJobs;
  /** Present only when a RocketReach key is configured. */
  rocketreach?: { getAccount(signal?: AbortSignal): Promise<{ lookupCreditsRemaining?: number }> } | undefined;
  /** A fresh count of the open runs against the backlog limits (src/domain/chat/backlog.ts). */
  backlog?: (() => Promise<BacklogSample>) | undefined;
  config: Readonly<AlertsConfig>;
  prefix: string;
  logger: Logger;
  fetch?: typeof fetch;
}

/**
 * The alert evaluator. Each pass samples PostgreSQL, Redis, the queues, the steps of the last
 * window and (every few minutes) the RocketReach balance, runs the pure rules and reconciles the
 * result with the stored alerts: a new condition opens an alert, a persisting one refreshes it
 * (value, last_seen_at), one that cleared is resolved. Raise and resolve go to the webhook.
 *
 * Every process runs the schedule; a PostgreSQL advisory lock lets one pass run at a time and a
 * last-pass timestamp in PostgreSQL lets only one pass per interval run across all processes.
 *
 * PostgreSQL down: no lock can be taken and nothing can be stored. Each process keeps the outage
 * in memory (first and last seen), one of them — the first to claim it in Redis, or each one when
 * Redis is down too — sends the `raised` webhook at once, and the outage is written as a resolved
 * alert by the first locked pass after PostgreSQL returns (outages seen by several processes are
 * merged into one row), followed by the `resolved` webhook.
 */
export function createAlertsService(deps: AlertsServiceDeps) {
  const { repository, coordination, config, logger, prefix } = deps;
  const webhook = createWebhookSender({ config, logger, fetch: deps.fetch ?? globalThis.fetch });
  let outage: { record: OutageRecord; notified: boolean } | undefined;
  const outageKey = `${prefix}:alerts:postgres-outage`;

  async function evaluate(options: { minGapMs?: number } = {}): Promise<EvaluationResult> {
    const postgres = await probe(() => repository.ping());
    if (!postgres.ok) return postgresDown(postgres.error);
    // Webhooks of this pass are sent once the lock is released (even when the pass fails midway):
    // a slow receiver must not keep other passes from running.
    const deliveries: WebhookDelivery[] = [];
    const outcome = await repository
      .withEvaluationLock(async () => {
        await flushOutage(deliveries);
        if (!(await repository.claimPass(options.minGapMs ?? 0))) return undefined;
        const samples = await collect();
        const evaluation = evaluateRules(samples, config);
        return { conditions: evaluation.conditions, ...(await apply(evaluation.conditions, evaluation.evaluated, deliveries)) };
      })
      .finally(() => webhook.enqueue(deliveries));
    if (!outcome.locked || !outcome.value) return { status: 'skipped', conditions: [], raised: [], updated: [], resolved: [] };
    return { status: 'evaluated', ...outcome.value };
  }

  async function collect(): Promise<AlertSamples> {
    const redisProbe = await probe(() => coordination.ping());
    const samples: AlertSamples = {
      postgres: { reachable: true },
      redis: redisProbe.ok ? { reachable: true } : { reachable: false, error: redisProbe.error },
    };
    const [queues, stages, providers, rocketreach, backlog] = await Promise.all([
      redisProbe.ok ? sampleQueues().catch((err: unknown) => skip('queues', err)) : undefined,
      repository.stageStats(config.windowMs).catch((err: unknown) => skip('stage statistics', err)),
      repository.providerStats(config.windowMs).catch((err: unknown) => skip('provider statistics', err)),
      rocketreachCredits().catch((err: unknown) => skip('RocketReach credits', err)),
      deps.backlog ? withTimeout(deps.backlog(), SAMPLE_TIMEOUT_MS, 'backlog count').catch((err: unknown) => skip('the backlog', err)) : undefined,
    ]);
    if (queues) samples.queues = queues;
    if (stages) samples.stages = stages;
    if (providers) samples.providers = providers;
    if (rocketreach !== undefined) samples.rocketreach = { creditsRemaining: rocketreach };
    if (backlog) samples.backlog = backlog;
    return samples;
  }

  function skip(what: string, err: unknown): undefined {
    logger.warn({ err: { message: (err as Error)?.message } }, `alerts: could not sample ${what}; its rules wait for the next pass`);
    return undefined;
  }

  async function sampleQueues(): Promise<Record<string, QueueSample>> {
    const names = deps.queues;
    const [queues, stalled] = await withTimeout(
      Promise.all([deps.queueHealth(), deps.stalled.count(names, config.windowMs)]),
      SAMPLE_TIMEOUT_MS,
      'queue sampling',
    );
    return queueSamplesFromHealth(queues, stalled);
  }

  /** The last known balance; asks RocketReach when the last check (by any process) is old enough. */
  async function rocketreachCredits(): Promise<number | undefined> {
    if (!deps.rocketreach) return undefined;
    const state = await repository.rocketreachState();
    const due = !state.checkedAt || Date.now() - state.checkedAt.getTime() >= config.rocketreachCheckMs;
    if (!due) return state.credits ?? undefined;
    try {
      const account = await deps.rocketreach.getAccount(AbortSignal.timeout(ACCOUNT_TIMEOUT_MS));
      const credits = account.lookupCreditsRemaining;
      await repository.setRocketreachState(credits ?? null);
      return credits;
    } catch (err) {
      // Checked (so not asked again before the next period), balance unchanged.
      await repository.setRocketreachState(undefined);
      logger.warn({ err: { message: (err as Error)?.message } }, 'alerts: RocketReach account check failed');
      return state.credits ?? undefined;
    }
  }

  async function apply(
    conditions: AlertCondition[],
    evaluated: Set<AlertRule>,
    deliveries: WebhookDelivery[],
  ): Promise<Omit<EvaluationResult, 'status' | 'conditions'>> {
    const raised: AlertRecord[] = [];
    const updated: AlertRecord[] = [];
    const resolved: AlertRecord[] = [];
    const open = await repository.open();
    for (const condition of conditions) {
      const { alert, inserted } = await repository.raise(condition);
      if (inserted) {
        raised.push(alert);
        logger.warn({ alert: summary(alert) }, `alert raised: ${alert.message}`);
        deliveries.push({ event: 'raised', alert });
      } else {
        updated.push(alert);
      }
    }
    const firing = new Set(conditions.map((c) => alertKey(c.rule, c.subject)));
    for (const alert of open) {
      if (firing.has(alertKey(alert.rule, alert.subject)) || !evaluated.has(alert.rule as AlertRule)) continue;
      const done = await repository.resolve(alert.id);
      if (!done) continue;
      resolved.push(done);
      logger.info({ alert: summary(done) }, `alert resolved: ${done.rule} on ${done.subject}`);
      deliveries.push({ event: 'resolved', alert: done });
    }
    return { raised, updated, resolved };
  }

  async function postgresDown(error: string | undefined): Promise<EvaluationResult> {
    const now = new Date();
    const [condition] = evaluateRules({ postgres: { reachable: false, ...(error ? { error } : {}) }, redis: { reachable: true } }, config).conditions;
    if (!outage) {
      outage = {
        record: { id: randomUUID(), rule: 'postgres_unreachable', subject: 'postgres', message: condition!.message, firstSeenAt: now, lastSeenAt: now },
        notified: false,
      };
      logger.error(`alert raised (kept in memory until PostgreSQL returns): ${condition!.message}`);
      if (await claimOutageNotice(outage.record.id)) {
        outage.notified = true;
        webhook.enqueue([{ event: 'raised', alert: outageAlert(outage.record, null) }]);
      }
    } else {
      outage.record.lastSeenAt = now;
      if (outage.notified) await coordination.expireValue(outageKey, outageNoticeTtl()).catch(() => undefined);
    }
    return { status: 'postgres_down', conditions: [condition!], raised: [], updated: [], resolved: [] };
  }

  /** One process sends the outage's webhooks: the first to claim it in the coordination store; each one if that is down too. */
  async function claimOutageNotice(id: string): Promise<boolean> {
    try {
      return await coordination.setValue(outageKey, id, outageNoticeTtl(), { onlyIfAbsent: true });
    } catch {
      return true;
    }
  }

  const outageNoticeTtl = () => Math.max(10 * 60_000, config.intervalMs * 4);

  async function flushOutage(deliveries: WebhookDelivery[]): Promise<void> {
    if (!outage) return;
    const pending = outage;
    const { alert, merged } = await repository.storeOutage(pending.record, Math.max(60_000, config.intervalMs * 2));
    outage = undefined;
    logger.info({ alert: summary(alert), merged }, 'PostgreSQL is back: the outage is stored as a resolved alert');
    if (pending.notified) {
      deliveries.push({ event: 'resolved', alert });
      try {
        await coordination.deleteValue(outageKey, { ifEquals: pending.record.id });
      } catch {
        // The notice expires by itself.
      }
    }
  }

  let schedule: ReturnType<typeof createPeriodicTask> | undefined;
  return {
    evaluate,
    /** Test and introspection hook: the outage kept in memory while PostgreSQL is down. */
    pendingOutage: () => (outage ? { ...outage.record } : undefined),
    start(intervalMs: number = config.intervalMs) {
      if (schedule) return;
      schedule = createPeriodicTask(
        () => evaluate({ minGapMs: intervalMs * 0.8 }),
        (err) => logger.warn({ err: { message: (err as Error)?.message } }, 'alert evaluation failed'),
      );
      schedule.start(intervalMs);
    },
    /** Resolves when every webhook queued so far has been sent (or has failed for good). */
    whenDelivered: () => webhook.whenIdle(),
    async stop() {
      await schedule?.stop();
      schedule = undefined;
      await webhook.close();
    },
  };
}

export type AlertsService = ReturnType<typeof createAlertsService>;

function outageAlert(record: OutageRecord, resolvedAt: Date | null): AlertRecord {
  return {
    id: record.id,
    rule: record.rule,
    subject: record.subject,
    severity: 'critical',
    status: resolvedAt ? 'resolved' : 'open',
    message: record.message,
    value: 1,
    threshold: 0,
    firstSeenAt: record.firstSeenAt,
    lastSeenAt: record.lastSeenAt,
    resolvedAt,
    acknowledgedAt: null,
    acknowledgedBy: null,
    acknowledgedOrg: null,
  };
}

function summary(alert: AlertRecord) {
  return { id: alert.id, rule: alert.rule, subject: alert.subject, severity: alert.severity, value: alert.value, threshold: alert.threshold };
}

async function probe(check: () => Promise<unknown>): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    await withTimeout(check(), PROBE_TIMEOUT_MS, 'check');
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error)?.message?.slice(0, 200) || 'failed' };
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface WebhookDelivery {
  event: WebhookEvent;
  alert: AlertRecord;
}

/**
 * Sends webhooks one at a time, in order, from an in-memory queue that evaluation passes add to
 * after releasing their lock. Redirects are not followed (a 3xx is a failure: the receiver's
 * address is configured, not negotiated). With a secret, each attempt is signed:
 * `x-honeyjar-timestamp: <unix seconds>` and `x-honeyjar-signature: sha256=<hex>`, the
 * HMAC-SHA256 of `<timestamp>.<body>` under the secret.
 */
function createWebhookSender(deps: { config: Readonly<AlertsConfig>; logger: Logger; fetch: typeof fetch }) {
  const { config, logger } = deps;
  const queue: WebhookDelivery[] = [];
  let sending: Promise<void> | undefined;
  let closed = false;

  function enqueue(deliveries: readonly WebhookDelivery[]): void {
    if (!config.webhookUrl || deliveries.length === 0) return;
    queue.push(...deliveries);
    const excess = queue.length - MAX_QUEUED_WEBHOOKS;
    if (excess > 0) {
      queue.splice(0, excess);
      logger.warn({ dropped: excess }, 'alert webhook queue full: the oldest deliveries were dropped');
    }
    kick();
  }

  function kick(): void {
    if (sending || closed) return;
    sending = (async () => {
      for (let next = queue.shift(); next; next = closed ? undefined : queue.shift()) await send(next);
    })().finally(() => {
      sending = undefined;
      if (queue.length > 0) kick();
    });
  }

  async function send({ event, alert }: WebhookDelivery): Promise<void> {
    const url = config.webhookUrl!;
    const body = JSON.stringify({ event, alert });
    let failure = '';
    for (let attempt = 1; attempt <= WEBHOOK_ATTEMPTS; attempt++) {
      try {
        const response = await deps.fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'honeyjar-alerts', ...signatureHeaders(body, config.webhookSecret) },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(config.webhookTimeoutMs),
        });
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) return;
        failure = response.status >= 300 && response.status < 400 ? `HTTP ${response.status} redirect, not followed` : `HTTP ${response.status}`;
        // A client error or a redirect will not get better by repeating the same request.
        if (response.status < 500 && response.status !== 429) break;
      } catch (err) {
        failure = (err as Error)?.name === 'TimeoutError' ? `timed out after ${config.webhookTimeoutMs} ms` : ((err as Error)?.message ?? 'failed');
      }
      if (attempt < WEBHOOK_ATTEMPTS) await sleep(WEBHOOK_RETRY_DELAY_MS);
    }
    // The URL may carry a secret: only its host is logged.
    logger.warn({ event, alertId: alert.id, rule: alert.rule, webhookHost: hostOf(url), failure }, 'alert webhook failed; not retried');
  }

  async function whenIdle(): Promise<void> {
    while (sending) await sending;
  }

  return {
    enqueue,
    whenIdle,
    /** Sends what is queued, for as long as one delivery may take at most; what remains is dropped and logged. */
    async close(): Promise<void> {
      const bound = WEBHOOK_ATTEMPTS * config.webhookTimeoutMs + WEBHOOK_RETRY_DELAY_MS;
      await Promise.race([whenIdle(), sleep(bound, undefined, { ref: false })]);
      closed = true;
      if (queue.length > 0) logger.warn({ dropped: queue.length }, 'alert webhooks not sent before shutdown');
      queue.length = 0;
    },
  };
}

/** The signature headers of one delivery attempt; none without a secret. */
export function signatureHeaders(body: string, secret: string | undefined, now: number = Date.now()): Record<string, string> {
  if (!secret) return {};
  const timestamp = String(Math.floor(now / 1000));
  const signature = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return { 'x-honeyjar-timestamp': timestamp, 'x-honeyjar-signature': `sha256=${signature}` };
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'invalid';
  }
}
