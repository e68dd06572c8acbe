import type { Coordination } from '../../engine/ports/coordination.js';

/**
 * Stalled jobs, counted across processes. BullMQ's stalled checker runs in the worker processes
 * (once per `stalledInterval` across all workers of a queue) and emits `stalled` on the worker that
 * found the job; each such event is recorded here as a mark per queue in the coordination store (a
 * sorted set scored by time on Redis, rows on PostgreSQL), so that the alert evaluator — in
 * whichever process holds the evaluation lock — counts the stalls of the last window. Entries
 * older than the kept horizon are forgotten on every write.
 */
const KEEP_MS = 24 * 3_600_000;

export function stalledKey(prefix: string, queue: string): string {
  return `${prefix}:monitoring:stalled:${queue}`;
}

export function createStalledJobs(deps: { coordination: Coordination; prefix: string; now?: () => number }) {
  const { coordination, prefix } = deps;
  const now = deps.now ?? Date.now;
  return {
    /** Records one stall; never throws (a store error loses one count, not the worker). */
    async record(queue: string, jobId: string): Promise<void> {
      const at = now();
      try {
        await coordination.mark(stalledKey(prefix, queue), `${at}:${jobId}`, at, { forgetBefore: at - KEEP_MS, ttlMs: KEEP_MS });
      } catch {
        // The store is down: the stall is not counted.
      }
    },

    /** Stalls per queue in the last `windowMs`. */
    async count(queues: readonly string[], windowMs: number): Promise<Record<string, number>> {
      const counts = await coordination.countMarks(
        queues.map((queue) => stalledKey(prefix, queue)),
        now() - windowMs,
      );
      return Object.fromEntries(queues.map((queue, i) => [queue, counts[i] ?? 0]));
    },
  };
}

export type StalledJobs = ReturnType<typeof createStalledJobs>;
