import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { RunsRepository } from '../adapters/postgres/run-store/index.js';
import { createHttpStats } from '../domain/monitoring/http-stats.js';
import { instrumentFetch, instrumentLlmProvider, type ProviderObserver } from '../domain/monitoring/instrumented-providers.js';
import { createProviderStats } from '../domain/monitoring/provider-stats.js';
import type { Catalog } from '../engine/catalog.js';
import { stageOrder } from '../engine/dag.js';
import type { LlmProvider } from '../domain/stages/llm/llm.provider.js';
import type { StageName } from '../engine/catalog.js';
import type { Heartbeat } from './heartbeat.js';
import { createPrometheus } from './prometheus.js';
import type { JobObserver } from './worker-observer.js';

/** What the monitoring needs of a BullMQ worker of this process. */
export interface LocalWorker {
  concurrency: number;
  isRunning(): boolean;
  isPaused(): boolean;
}

/**
 * The in-process side of monitoring, one per container: request and provider statistics (JSON
 * metrics), the Prometheus registry, the event-loop delay, the workers of this process, and the
 * decorators and hooks that feed them.
 */
export function createMonitoring(catalog: Catalog) {
  const http = createHttpStats();
  const providers = createProviderStats();
  /** This process's workers, by queue name (see trackWorkers). */
  const localWorkers = new Map<string, LocalWorker>();
  const prometheus = createPrometheus({ localWorkers, stages: stageOrder(catalog) });
  const eventLoop = createEventLoopMonitor();
  const startedAt = new Date();

  const providerObserver: ProviderObserver = {
    call(provider, outcome) {
      providers.call(provider, outcome);
      prometheus.providerCall(provider, outcome);
    },
    tokens(provider, prompt, completion) {
      providers.tokens(provider, prompt, completion);
      prometheus.providerTokens(provider, prompt, completion);
    },
  };

  return {
    startedAt,
    http,
    providers,
    prometheus,
    eventLoop,
    localWorkers,

    /** One answered HTTP request; `route` is the route pattern (never the raw URL). */
    recordRequest(method: string, route: string, statusCode: number, durationMs: number): void {
      http.record(method, route, statusCode, durationMs);
      prometheus.observeRequest(method, route, statusCode, durationMs / 1000);
    },

    instrumentLlm(provider: LlmProvider): LlmProvider {
      return instrumentLlmProvider(provider, providerObserver);
    },

    instrumentFetch(provider: string): typeof fetch {
      return instrumentFetch(provider, providerObserver);
    },

    /** The runs repository, counting each run it finishes (once: the statements only finish open runs). */
    observeRuns(runs: RunsRepository): RunsRepository {
      return {
        ...runs,
        async completeWithReply(...args: Parameters<RunsRepository['completeWithReply']>) {
          const stored = await runs.completeWithReply(...args);
          if (stored) prometheus.runFinished('completed');
          return stored;
        },
        async finish(...args: Parameters<RunsRepository['finish']>) {
          const finished = await runs.finish(...args);
          if (finished) prometheus.runFinished(args[1]);
          return finished;
        },
      };
    },

    /** The stage workers' hook: the heartbeat when a job is taken, job metrics when it ends. */
    jobObserver(heartbeat: Heartbeat): JobObserver {
      return {
        started(stage: StageName, info) {
          heartbeat.beat(catalog[stage].queue);
          if (info.waitMs !== undefined) prometheus.observeJobWait(stage, info.waitMs / 1000);
        },
        settled(stage, outcome, durationMs) {
          prometheus.observeJob(stage, outcome, durationMs / 1000);
        },
      };
    },

    trackWorkers(workers: ReadonlyMap<StageName, LocalWorker>): void {
      for (const [stage, worker] of workers) localWorkers.set(catalog[stage].queue, worker);
    },

    untrackWorkers(workers: ReadonlyMap<StageName, LocalWorker>): void {
      for (const [stage, worker] of workers) if (localWorkers.get(catalog[stage].queue) === worker) localWorkers.delete(catalog[stage].queue);
    },

    close(): void {
      eventLoop.stop();
    },
  };
}

export type Monitoring = ReturnType<typeof createMonitoring>;

export interface EventLoopDelay {
  /** Length of the window the figures cover. */
  windowMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Event-loop delay over 10-second windows: the last complete window (or the current one at first). */
function createEventLoopMonitor(windowMs = 10_000) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let windowStart = performance.now();
  let last: EventLoopDelay | undefined;
  const snapshot = (): EventLoopDelay => {
    const ms = (ns: number) => Math.round((Number.isFinite(ns) ? ns : 0) / 1e4) / 100;
    const empty = histogram.count === 0;
    return {
      windowMs: Math.round(performance.now() - windowStart),
      meanMs: empty ? 0 : ms(histogram.mean),
      p50Ms: empty ? 0 : ms(histogram.percentile(50)),
      p99Ms: empty ? 0 : ms(histogram.percentile(99)),
      maxMs: empty ? 0 : ms(histogram.max),
    };
  };
  const timer = setInterval(() => {
    last = snapshot();
    histogram.reset();
    windowStart = performance.now();
  }, windowMs);
  timer.unref();
  return {
    read: (): EventLoopDelay => last ?? snapshot(),
    stop(): void {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
