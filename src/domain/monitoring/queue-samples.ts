import type { QueueSample } from './alert-rules.js';

/**
 * What the health service (src/monitoring/health.service.ts, `detailed().queues`) reports of one
 * queue — counts, the oldest waiting job's age, the workers' heartbeat, pause and rate-limit
 * state — described structurally so that domain code imports nothing from there. The alert
 * evaluator reads the queues through it instead of asking BullMQ a second time.
 */
export interface QueueHealthDetail {
  counts: Partial<Record<'waiting' | 'active' | 'delayed' | 'paused' | 'prioritized', number>>;
  oldestWaitingAgeMs: number | null;
  /** Since any worker process last took a job from the queue (heartbeat); null if none within the hour. */
  lastFetchAgeMs: number | null;
  workersSeen: number | null;
  paused: boolean;
  rateLimitTtlMs: number;
}

/** The alert rules' view of each queue, plus the stalls counted in the window. */
export function queueSamplesFromHealth(
  queues: Readonly<Record<string, QueueHealthDetail>>,
  stalled: Readonly<Record<string, number>>,
): Record<string, QueueSample> {
  return Object.fromEntries(
    Object.entries(queues).map(([name, q]): [string, QueueSample] => [
      name,
      {
        waiting: (q.counts.waiting ?? 0) + (q.counts.paused ?? 0) + (q.counts.prioritized ?? 0),
        delayed: q.counts.delayed ?? 0,
        active: q.counts.active ?? 0,
        paused: q.paused,
        rateLimitedForMs: Math.max(0, q.rateLimitTtlMs),
        oldestWaitingAgeMs: q.oldestWaitingAgeMs,
        lastFetchAgeMs: q.lastFetchAgeMs,
        stalledInWindow: stalled[name] ?? 0,
        workers: q.workersSeen ?? undefined,
      },
    ]),
  );
}
