import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Job, Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ConcurrencyController, summarizeDurations, type ScalingDecision } from '../domain/monitoring/autoscaler.js';
import type { StageName } from '../engine/catalog.js';
import type { StageJobData } from '../adapters/bullmq/job-options.js';
import { PUBLISHED_DECISIONS, type FleetState, type PublishedProcessState, type PublishedQueueState } from './fleet-state.js';

/**
 * Runs the concurrency controllers of this process's workers on an interval: samples each queue
 * (BullMQ counts, the worker's own processing times), applies the decision to `Worker.concurrency`
 * (BullMQ reads it before fetching each job), logs every change, keeps the last decisions in
 * memory and publishes this process's state to the fleet state (fleet-state.ts), so that every
 * process scales its share and any API process can show every worker (queue-status.ts).
 */

const HISTORY = 50;
const TIMINGS_KEPT = 1_000;

export interface DecisionRecord extends ScalingDecision {
  queue: string;
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
  /** Where the state is published and the other processes' is read. */
  fleet: FleetState;
  logger: Logger;
  processId?: string;
}): Autoscaling {
  const { config, logger, fleet } = deps;
  const settings = config.queue.autoscale;
  const processId = deps.processId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
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
    await fleet.publish(state(), ttlMs);
  };

  const sampleAndDecide = async (entry: Controlled, others: Map<string, PublishedProcessState>): Promise<void> => {
    const queue = deps.queues[entry.stage];
    const limiter = limiterOf(config, entry.stage);
    const now = Date.now();
    const [counts, paused, rateLimitTtl] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed'),
      queue.isPaused(),
      limiter ? queue.getRateLimitTtl(limiter.max) : Promise.resolve(0),
    ]);
    const dueDelayed = counts.delayed ? await dueDelayedJobs(queue, now) : 0;
    const waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0) + dueDelayed;
    const active = counts.active ?? 0;
    if (waiting + active === 0) entry.busySince = undefined;
    else entry.busySince ??= now;

    const current = entry.worker.concurrency;
    let fleetConcurrency = current;
    for (const [id, other] of others) {
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
        if (!fleet.available()) throw new Error('the coordination store is not connected');
        if (settings.enabled) {
          // The other processes' concurrency: each process scales its share of the backlog.
          const others = await fleet.read(Date.now());
          await Promise.all(controlled.map((entry) => sampleAndDecide(entry, others)));
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
      await fleet.remove(processId);
    },
  };
}

function limiterOf(config: Readonly<Config>, stage: StageName): { max: number; duration: number } | undefined {
  return config.queue.limiters[stage];
}

/** How many delayed jobs are looked at to count the due ones (a backlog of retries is rarely larger). */
const DUE_DELAYED_SCAN = 200;

/**
 * Delayed jobs whose time has come (a retry's backoff ran out): they are waiting in all but name.
 * Read through the queue API, the same on Redis and PostgreSQL: a retry is due its backoff after
 * the failed attempt, which started at `processedOn` (a first delay counts from `timestamp`).
 */
async function dueDelayedJobs(queue: Queue<StageJobData>, now: number): Promise<number> {
  const jobs = await queue.getJobs(['delayed'], 0, DUE_DELAYED_SCAN - 1, true);
  return jobs.filter((job) => job && (job.processedOn ?? job.timestamp) + (job.delay ?? 0) <= now).length;
}
