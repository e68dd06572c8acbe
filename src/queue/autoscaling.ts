import { queueCounts } from '../adapters/bullmq/transport.js';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Job, Queue, Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ConcurrencyController, summarizeDurations, type ScalingDecision } from '../domain/monitoring/autoscaler.js';
import { stageOrder } from '../engine/dag.js';
import type { StageName } from '../engine/catalog.js';
import type { StageJobData } from '../adapters/bullmq/job-options.js';

/**
 * Runs the concurrency controllers of this process's workers on an interval: samples each queue
 * (BullMQ counts, the worker's own processing times), applies the decision to `Worker.concurrency`
 * (BullMQ reads it before fetching each job), logs every change, keeps the last decisions in
 * memory and publishes this process's state to Redis so that any API process can show every worker
 * (`readQueueStatus`, GET /api/v1/chat/system/queue-status).
 *
 * Published state: one hash, `<prefix>:autoscale:workers`, one field per process (its id), the value
 * JSON with an `expiresAt`; the key's TTL is refreshed on every publish, and readers ignore (and
 * delete) fields whose process stopped publishing.
 */

const HISTORY = 50;
const PUBLISHED_DECISIONS = 10;
const TIMINGS_KEPT = 1_000;

export interface DecisionRecord extends ScalingDecision {
  queue: string;
}

export interface PublishedQueueState {
  stage: StageName;
  autoscale: boolean;
  current: number;
  min: number;
  max: number;
  cap?: { value: number; reason: string };
  processing?: { meanMs: number; p95Ms: number; count: number };
  throughputPerSec?: number;
  lastDecision?: ScalingDecision;
  decisions: ScalingDecision[];
}

export interface PublishedProcessState {
  processId: string;
  host: string;
  pid: number;
  updatedAt: number;
  expiresAt: number;
  intervalMs: number;
  queues: Record<string, PublishedQueueState>;
}

export interface Autoscaling {
  readonly processId: string;
  /** The changes made to a stage's concurrency, oldest first (the last 50). */
  decisions(stage: StageName): readonly DecisionRecord[];
  /** What this process publishes. */
  state(): PublishedProcessState;
  /** One round now: sample, decide, apply, publish. The interval calls it too. */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

export function autoscaleKey(prefix: string): string {
  return `${prefix}:autoscale:workers`;
}

/** Processing times of one worker's recent jobs (finished or failed attempts). */
class JobTimings {
  private readonly finished: Array<{ at: number; durationMs: number }> = [];

  record(at: number, durationMs: number): void {
    this.finished.push({ at, durationMs: Math.max(0, durationMs) });
    if (this.finished.length > TIMINGS_KEPT) this.finished.splice(0, this.finished.length - TIMINGS_KEPT);
  }

  /**
   * Processing times since `windowStart`; the throughput over `[throughputSince, now]`, when that
   * span is long enough and saw a few jobs finish (otherwise unknown: the controller estimates from
   * the processing time instead).
   */
  stats(now: number, windowStart: number, throughputSince: number, minSpanMs: number) {
    while (this.finished.length && this.finished[0]!.at < windowStart) this.finished.shift();
    const processing = summarizeDurations(this.finished.map((f) => f.durationMs));
    const span = now - throughputSince;
    const count = this.finished.filter((f) => f.at >= throughputSince).length;
    const throughputPerSec = span >= minSpanMs && count >= 3 ? (count / span) * 1000 : undefined;
    return { processing, throughputPerSec };
  }
}

interface Controlled {
  stage: StageName;
  queue: string;
  worker: Worker<StageJobData>;
  controller: ConcurrencyController;
  timings: JobTimings;
  history: DecisionRecord[];
  busySince: number | undefined;
  lastChangeAt: number;
  lastStats: { processing?: PublishedQueueState['processing']; throughputPerSec?: number };
  detach(): void;
}

export function startAutoscaling(deps: {
  config: Readonly<Config>;
  workers: ReadonlyMap<StageName, Worker<StageJobData>>;
  /** Queues to sample, on a fail-fast connection (the producer's). */
  queues: Record<StageName, Queue<StageJobData>>;
  /** Where the state is published (the producer's connection). */
  redis: Redis | Cluster;
  logger: Logger;
  processId?: string;
}): Autoscaling {
  const { config, logger, redis } = deps;
  const settings = config.queue.autoscale;
  const processId = deps.processId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const key = autoscaleKey(config.queue.prefix);
  const ttlMs = Math.max(3 * settings.intervalMs, 15_000);
  const windowMs = Math.max(10 * settings.intervalMs, 30_000);

  const controlled: Controlled[] = [];
  for (const [stage, worker] of deps.workers) {
    const limits = settings.limits[stage];
    const controller = new ConcurrencyController({
      min: limits.min,
      max: limits.max,
      ...(limits.cap ? { cap: limits.cap } : {}),
      targetDrainMs: settings.targetDrainMs,
      upCooldownMs: settings.upCooldownMs,
      downCooldownMs: settings.downCooldownMs,
      idleMs: settings.idleMs,
    });
    const timings = new JobTimings();
    // Observes the worker without touching its processor: each finished or failed attempt.
    const onFinished = (job: Job<StageJobData> | undefined) => {
      if (!job?.processedOn) return;
      const end = job.finishedOn ?? Date.now();
      timings.record(end, end - job.processedOn);
    };
    worker.on('completed', onFinished);
    worker.on('failed', onFinished);
    controlled.push({
      stage,
      queue: config.catalog[stage].queue,
      worker,
      controller,
      timings,
      history: [],
      busySince: undefined,
      lastChangeAt: Number.NEGATIVE_INFINITY,
      lastStats: {},
      detach: () => {
        worker.off('completed', onFinished);
        worker.off('failed', onFinished);
      },
    });
  }

  const apply = (entry: Controlled, decision: ScalingDecision): void => {
    if (decision.to === decision.from) return;
    entry.worker.concurrency = decision.to;
    entry.lastChangeAt = decision.at;
    entry.history.push({ ...decision, queue: entry.queue });
    if (entry.history.length > HISTORY) entry.history.splice(0, entry.history.length - HISTORY);
    logger.info(
      { queue: entry.queue, from: decision.from, to: decision.to, reason: decision.reason },
      `autoscale ${entry.queue} ${decision.from} -> ${decision.to}: ${decision.reason}`,
    );
  };

  // A starting value outside the range (e.g. CONCURRENCY_ROCKETREACH above the global limit) is
  // corrected at once, Redis or not.
  if (settings.enabled) {
    for (const entry of controlled) {
      const current = entry.worker.concurrency;
      if (current > entry.controller.max || current < entry.controller.min) {
        apply(entry, entry.controller.decide({ at: Date.now(), waiting: 0, active: 0, concurrency: current }));
      }
    }
  }

  const state = (): PublishedProcessState => {
    const now = Date.now();
    return {
      processId,
      host: hostname(),
      pid: process.pid,
      updatedAt: now,
      expiresAt: now + ttlMs,
      intervalMs: settings.intervalMs,
      queues: Object.fromEntries(
        controlled.map((entry) => {
          const current = entry.worker.concurrency;
          const decisions = entry.history.slice(-PUBLISHED_DECISIONS).map(({ queue: _queue, ...d }) => d);
          const queueState: PublishedQueueState = {
            stage: entry.stage,
            autoscale: settings.enabled,
            current,
            // With auto-scaling off the concurrency stays where it started.
            min: settings.enabled ? entry.controller.min : current,
            max: settings.enabled ? entry.controller.max : current,
            ...(settings.enabled && settings.limits[entry.stage].cap ? { cap: settings.limits[entry.stage].cap! } : {}),
            ...(entry.lastStats.processing ? { processing: entry.lastStats.processing } : {}),
            ...(entry.lastStats.throughputPerSec !== undefined ? { throughputPerSec: entry.lastStats.throughputPerSec } : {}),
            ...(decisions.length ? { lastDecision: decisions.at(-1)! } : {}),
            decisions,
          };
          return [entry.queue, queueState];
        }),
      ),
    };
  };

  const publish = async (): Promise<void> => {
    await redis.multi().hset(key, processId, JSON.stringify(state())).pexpire(key, ttlMs).exec();
  };

  const sampleAndDecide = async (entry: Controlled, fleet: Map<string, PublishedProcessState>): Promise<void> => {
    const queue = deps.queues[entry.stage];
    const limiter = limiterOf(config, entry.stage);
    const now = Date.now();
    const [counts, dueDelayed, paused, rateLimitTtl] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active'),
      // Delayed jobs that are due (BullMQ scores them timestamp * 0x1000 + a counter).
      redis.zcount(queue.keys.delayed!, 0, (now + 1) * 0x1000 - 1),
      queue.isPaused(),
      limiter ? queue.getRateLimitTtl(limiter.max) : Promise.resolve(0),
    ]);
    const waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0) + dueDelayed;
    const active = counts.active ?? 0;
    if (waiting + active === 0) entry.busySince = undefined;
    else entry.busySince ??= now;

    const current = entry.worker.concurrency;
    let fleetConcurrency = current;
    for (const [id, other] of fleet) {
      if (id !== processId) fleetConcurrency += other.queues[entry.queue]?.current ?? 0;
    }
    const since = Math.max(now - windowMs, entry.busySince ?? now, entry.lastChangeAt);
    const stats = entry.timings.stats(now, now - windowMs, since, Math.max(settings.intervalMs, 1_000));
    entry.lastStats = stats;
    const decision = entry.controller.decide({
      at: now,
      waiting,
      active,
      concurrency: current,
      fleetConcurrency,
      ...(stats.processing ? { processing: stats.processing } : {}),
      ...(stats.throughputPerSec !== undefined ? { throughputPerSec: stats.throughputPerSec } : {}),
      paused,
      rateLimited: rateLimitTtl > 0,
    });
    if (decision.to !== decision.from) apply(entry, decision);
    else logger.debug({ queue: entry.queue, concurrency: current, waiting, active, reason: decision.reason }, 'autoscale hold');
  };

  let lastWarned = 0;
  let running: Promise<void> | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const tick = (): Promise<void> =>
    (running ??= (async () => {
      try {
        if (redis.status !== 'ready') throw new Error('Redis is not connected');
        if (settings.enabled) {
          // The other processes' concurrency: each process scales its share of the backlog.
          const fleet = parseStates(await redis.hgetall(key), Date.now());
          await Promise.all(controlled.map((entry) => sampleAndDecide(entry, fleet)));
        }
        await publish();
      } catch (error) {
        const now = Date.now();
        if (now - lastWarned > 60_000) {
          lastWarned = now;
          logger.warn({ err: { message: error instanceof Error ? error.message : String(error) } }, 'autoscaling skipped a round');
        }
      } finally {
        running = undefined;
      }
    })());

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void tick().finally(schedule);
    }, settings.intervalMs);
    timer.unref();
  };
  schedule();
  void tick();

  return {
    processId,
    decisions: (stage) => controlled.find((entry) => entry.stage === stage)?.history ?? [],
    state,
    tick,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      for (const entry of controlled) entry.detach();
      if (redis.status === 'ready') await redis.hdel(key, processId).catch(() => undefined);
    },
  };
}

function limiterOf(config: Readonly<Config>, stage: StageName): { max: number; duration: number } | undefined {
  return config.queue.limiters[stage];
}

function parseStates(raw: Record<string, string>, now: number): Map<string, PublishedProcessState> {
  const states = new Map<string, PublishedProcessState>();
  for (const [id, json] of Object.entries(raw)) {
    try {
      const parsed = JSON.parse(json) as PublishedProcessState;
      if (parsed.expiresAt >= now) states.set(id, parsed);
    } catch {
      // A field this version does not understand: ignored.
    }
  }
  return states;
}

// ---------------------------------------------------------------------------------------------
// The read side, for GET /api/v1/chat/system/queue-status (any process with a Redis connection).

export interface QueueStatus {
  name: string;
  stage: StageName;
  counts: { waiting: number; active: number; delayed: number; failed: number; completed: number; paused: number; prioritized: number };
  paused: boolean;
  concurrency: {
    /** Summed over the worker processes that publish their state. */
    current: number;
    min: number;
    max: number;
    /** This process's configuration, whether or not a worker runs. */
    configured: { min: number; max: number; start: number; autoscale: boolean };
    processes: Array<{ processId: string; host: string; pid: number; current: number; min: number; max: number; autoscale: boolean; updatedAt: string }>;
  };
  rateLimit: {
    limiter: { max: number; duration: number } | null;
    limited: boolean;
    ttlMs: number;
    globalConcurrency: number | null;
  };
  workersSeen: number;
  lastDecisions: Array<{ at: string; processId: string; from: number; to: number; reason: string }>;
}

export async function readQueueStatus(deps: {
  config: Readonly<Config>;
  queues: Record<StageName, Queue<StageJobData>>;
  redis: Redis | Cluster;
}): Promise<{ timestamp: string; queues: QueueStatus[] }> {
  const { config, queues, redis } = deps;
  const key = autoscaleKey(config.queue.prefix);
  const now = Date.now();
  const raw = await redis.hgetall(key);
  const states = parseStates(raw, now);
  const stale = Object.keys(raw).filter((id) => !states.has(id));
  if (stale.length) await redis.hdel(key, ...stale).catch(() => undefined);

  const result = await Promise.all(
    stageOrder(config.catalog).map(async (stage): Promise<QueueStatus> => {
      const queue = queues[stage];
      const name = config.catalog[stage].queue;
      const limiter = limiterOf(config, stage);
      const [counts, paused, ttl, workersSeen, globalConcurrency] = await Promise.all([
        queueCounts(queue),
        queue.isPaused(),
        queue.getRateLimitTtl(limiter?.max),
        queue.getWorkersCount(),
        queue.getGlobalConcurrency(),
      ]);
      const processes: QueueStatus['concurrency']['processes'] = [];
      const decisions: QueueStatus['lastDecisions'] = [];
      for (const state of states.values()) {
        const q = state.queues[name];
        if (!q) continue;
        processes.push({
          processId: state.processId,
          host: state.host,
          pid: state.pid,
          current: q.current,
          min: q.min,
          max: q.max,
          autoscale: q.autoscale,
          updatedAt: new Date(state.updatedAt).toISOString(),
        });
        for (const d of q.decisions ?? []) {
          decisions.push({ at: new Date(d.at).toISOString(), processId: state.processId, from: d.from, to: d.to, reason: d.reason });
        }
      }
      processes.sort((a, b) => a.processId.localeCompare(b.processId));
      decisions.sort((a, b) => b.at.localeCompare(a.at));
      const sum = (pick: (p: (typeof processes)[number]) => number) => processes.reduce((total, p) => total + pick(p), 0);
      const limits = config.queue.autoscale.limits[stage];
      return {
        name,
        stage,
        counts,
        paused,
        concurrency: {
          current: sum((p) => p.current),
          min: sum((p) => p.min),
          max: sum((p) => p.max),
          configured: { min: limits.min, max: limits.max, start: config.queue.concurrency[stage], autoscale: config.queue.autoscale.enabled },
          processes,
        },
        rateLimit: {
          limiter: limiter ? { max: limiter.max, duration: limiter.duration } : null,
          limited: ttl > 0,
          ttlMs: Math.max(0, ttl),
          globalConcurrency: globalConcurrency ?? null,
        },
        workersSeen,
        lastDecisions: decisions.slice(0, PUBLISHED_DECISIONS),
      };
    }),
  );
  return { timestamp: new Date(now).toISOString(), queues: result };
}
