import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProviderOutcome } from '../domain/monitoring/provider-stats.js';
import type { StageName } from '../engine/catalog.js';
import type { JobOutcome } from './worker-observer.js';
import type { BacklogStatus } from '../domain/chat/backlog.js';

/** Job states exported per queue by `honeyjar_queue_jobs`. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused', 'prioritized'] as const;
export type QueueStateCounts = Partial<Record<(typeof QUEUE_STATES)[number], number>>;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * The Prometheus side: a registry of this process's own (never prom-client's global one, so that
 * several apps can live in one process, as in the tests), the process metrics from
 * `collectDefaultMetrics`, and the server's metrics, in base units (seconds) with `_total` counters.
 * Queue depths are read from BullMQ at scrape time (bounded by a timeout); worker concurrency from
 * this process's workers.
 */
export function createPrometheus(options: { localWorkers: ReadonlyMap<string, { concurrency: number }>; stages: readonly StageName[]; collectTimeoutMs?: number }) {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests served by this process, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const queueJobs = new Gauge({
    name: 'honeyjar_queue_jobs',
    help: 'Jobs in each queue by state, read from BullMQ when scraped',
    labelNames: ['queue', 'state'] as const,
    registers,
  });
  const queueUp = new Gauge({
    name: 'honeyjar_queue_stats_up',
    help: '1 when the queue depths of this scrape could be read from Redis, 0 when not (honeyjar_queue_jobs is then absent)',
    registers,
  });
  const jobDuration = new Histogram({
    name: 'honeyjar_job_duration_seconds',
    help: 'Processing time of one job attempt by a stage worker of this process, by outcome (completed, skipped, retry, failed, cancelled, rate_limited)',
    labelNames: ['stage', 'outcome'] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const jobWait = new Histogram({
    name: 'honeyjar_job_wait_seconds',
    help: 'Time a job waited in its queue, from enqueue to its first start',
    labelNames: ['stage'] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const jobFailures = new Counter({
    name: 'honeyjar_job_failures_total',
    help: 'Failed job attempts: retry (another attempt follows) or final',
    labelNames: ['stage', 'kind'] as const,
    registers,
  });
  new Gauge({
    name: 'honeyjar_worker_concurrency',
    help: "Current concurrency of this process's worker of each queue",
    labelNames: ['queue'] as const,
    registers,
    collect() {
      this.reset();
      for (const [queue, worker] of options.localWorkers) this.set({ queue }, worker.concurrency);
    },
  });
  const providerCalls = new Counter({
    name: 'honeyjar_provider_calls_total',
    help: 'Calls to third-party providers (LLM completions, RocketReach HTTP requests) by outcome: ok, error, rate_limited (HTTP 429)',
    labelNames: ['provider', 'outcome'] as const,
    registers,
  });
  const providerTokens = new Counter({
    name: 'honeyjar_provider_tokens_total',
    help: 'Tokens used by LLM completions made by this process, by provider and type (prompt, completion)',
    labelNames: ['provider', 'type'] as const,
    registers,
  });
  const runsFinished = new Counter({
    name: 'honeyjar_runs_finished_total',
    help: 'Runs (batches) this process finished, by final status',
    labelNames: ['status'] as const,
    registers,
  });
  // Known series start at zero, so that rates work from the first scrape.
  for (const stage of options.stages) for (const kind of ['retry', 'final']) jobFailures.inc({ stage, kind }, 0);
  for (const status of ['completed', 'failed', 'cancelled']) runsFinished.inc({ status }, 0);

  const collectTimeoutMs = options.collectTimeoutMs ?? 1_000;

  return {
    registry,
    contentType: registry.contentType,

    observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
      httpDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
    },
    observeJobWait(stage: StageName, seconds: number): void {
      jobWait.observe({ stage }, seconds);
    },
    observeJob(stage: StageName, outcome: JobOutcome, seconds: number): void {
      jobDuration.observe({ stage, outcome }, seconds);
      if (outcome === 'retry') jobFailures.inc({ stage, kind: 'retry' });
      else if (outcome === 'failed') jobFailures.inc({ stage, kind: 'final' });
    },
    providerCall(provider: string, outcome: ProviderOutcome): void {
      providerCalls.inc({ provider, outcome });
    },
    providerTokens(provider: string, prompt: number, completion: number): void {
      if (prompt > 0) providerTokens.inc({ provider, type: 'prompt' }, prompt);
      if (completion > 0) providerTokens.inc({ provider, type: 'completion' }, completion);
    },
    runFinished(status: string): void {
      runsFinished.inc({ status });
    },

    /** The accepts this process refused over the backlog limits, and the backlog it judged by. */
    observeBacklog(status: () => BacklogStatus): void {
      const reported = { organization: 0, overall: 0 };
      new Counter({
        name: 'honeyjar_accepts_shed_total',
        help: 'Messages this process refused because the backlog was full: organization (429 backlog_full) or overall (503 overloaded)',
        labelNames: ['scope'] as const,
        registers,
        collect() {
          const { shed } = status();
          for (const scope of ['organization', 'overall'] as const) {
            this.inc({ scope }, shed[scope] - reported[scope]);
            reported[scope] = shed[scope];
          }
        },
      });
      new Gauge({
        name: 'honeyjar_backlog_open_runs',
        help: 'Open runs (accepted, not finished) across the system, as this process last counted them',
        registers,
        collect() {
          this.set(status().open);
        },
      });
      new Gauge({
        name: 'honeyjar_backlog_drain_rate',
        help: 'Measured rate at which a backlog drains, in runs per second (absent until measured)',
        registers,
        collect() {
          this.reset();
          const rate = status().drainRatePerSecond;
          if (rate !== null) this.set(rate);
        },
      });
      new Gauge({
        name: 'honeyjar_backlog_estimate_correction',
        help: "Measured ratio of finished runs' actual to estimated wait that estimatedCompletion is multiplied by (1 until measured)",
        registers,
        collect() {
          this.set(status().estimateCorrection);
        },
      });
    },

    /** The exposition text. Queue depths are read first through `queueCounts`, within the timeout. */
    async metrics(queueCounts?: () => Promise<Record<string, QueueStateCounts>>): Promise<string> {
      queueJobs.reset();
      if (queueCounts) {
        let timer: NodeJS.Timeout | undefined;
        try {
          const counts = await Promise.race([
            queueCounts(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error('timeout')), collectTimeoutMs);
            }),
          ]);
          for (const [queue, byState] of Object.entries(counts)) {
            for (const state of QUEUE_STATES) queueJobs.set({ queue, state }, byState[state] ?? 0);
          }
          queueUp.set(1);
        } catch {
          queueUp.set(0);
        } finally {
          clearTimeout(timer);
        }
      }
      return registry.metrics();
    },
  };
}

export type Prometheus = ReturnType<typeof createPrometheus>;
