import type { Cluster, Redis } from 'ioredis';

/**
 * Stalled jobs, counted across processes. BullMQ's stalled checker runs in the worker processes
 * (once per `stalledInterval` across all workers of a queue) and emits `stalled` on the worker that
 * found the job; each such event is recorded here in a Redis sorted set per queue, scored by time,
 * so that the alert evaluator — in whichever process holds the evaluation lock — counts the stalls
 * of the last window. Entries older than the kept horizon are trimmed on every write.
 */
const KEEP_MS = 24 * 3_600_000;

export function stalledKey(prefix: string, queue: string): string {
  return `${prefix}:monitoring:stalled:${queue}`;
}

export function createStalledJobs(deps: { redis: Redis | Cluster; prefix: string; now?: () => number }) {
  const { redis, prefix } = deps;
  const now = deps.now ?? Date.now;
  return {
    /** Records one stall; never throws (a Redis error loses one count, not the worker). */
    async record(queue: string, jobId: string): Promise<void> {
      const at = now();
      const key = stalledKey(prefix, queue);
      try {
        await redis
          .multi()
          .zadd(key, at, `${at}:${jobId}`)
          .zremrangebyscore(key, '-inf', at - KEEP_MS)
          .pexpire(key, KEEP_MS)
          .exec();
      } catch {
        // Redis is down: the stall is not counted.
      }
    },

    /** Stalls per queue in the last `windowMs`. */
    async count(queues: readonly string[], windowMs: number): Promise<Record<string, number>> {
      const since = now() - windowMs;
      const pipeline = redis.pipeline();
      for (const queue of queues) pipeline.zcount(stalledKey(prefix, queue), since, '+inf');
      const replies = (await pipeline.exec()) ?? [];
      const out: Record<string, number> = {};
      queues.forEach((queue, i) => {
        const [error, value] = replies[i] ?? [new Error('no reply'), null];
        if (error) throw error;
        out[queue] = Number(value ?? 0);
      });
      return out;
    },
  };
}

export type StalledJobs = ReturnType<typeof createStalledJobs>;
