import type { Queue } from 'bullmq';
import type { Config } from '../config.js';
import { stageOrder } from '../engine/dag.js';
import type { StageName } from '../engine/catalog.js';
import type { StageJobData } from '../adapters/bullmq/job-options.js';
import { queueCounts } from '../adapters/bullmq/transport.js';
import { PUBLISHED_DECISIONS, type FleetState } from './fleet-state.js';

/** The read side of the fleet state, for GET /api/v1/chat/system/queue-status (any process). */

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
  fleet: FleetState;
}): Promise<{ timestamp: string; queues: QueueStatus[] }> {
  const { config, queues, fleet } = deps;
  const now = Date.now();
  const states = await fleet.read(now);

  const result = await Promise.all(
    stageOrder(config.catalog).map(async (stage): Promise<QueueStatus> => {
      const queue = queues[stage];
      const name = config.catalog[stage].queue;
      const limiter = config.queue.limiters[stage];
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
