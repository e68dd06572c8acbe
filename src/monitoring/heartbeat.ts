import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Cluster, Redis } from 'ioredis';

/** Entries of processes that have not fetched for this long are dropped (a process that died). */
const RETAIN_MS = 60 * 60_000;

/**
 * The "a worker took a job from this queue" signal, shared by every process through Redis: one
 * sorted set per queue, `<prefix>:monitoring:heartbeat:<queue>`, whose members are worker
 * processes scored by the time (ms) they last took a job. A worker writes when it takes a job, at
 * most once per `minIntervalMs` per queue; the health check compares the newest score with the age
 * of the oldest waiting job. A worker whose connection still answers PING but no longer fetches
 * stops writing, and shows.
 *
 * Writes go through the container's fail-fast connection and never wait or throw: when Redis is
 * down there is nothing to consume anyway.
 */
export function createHeartbeat(options: { redis: Redis | Cluster; prefix: string; minIntervalMs?: number; now?: () => number }) {
  const { redis, prefix } = options;
  const now = options.now ?? Date.now;
  const minIntervalMs = options.minIntervalMs ?? 1_000;
  /** This process, as a member of the sets: host, pid and a random part (tests run several in one pid). */
  const processId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const lastWritten = new Map<string, number>();
  const key = (queue: string) => `${prefix}:monitoring:heartbeat:${queue}`;

  return {
    processId,
    key,

    /** Records that this process took a job from `queue` (throttled). */
    beat(queue: string): void {
      const at = now();
      if (at - (lastWritten.get(queue) ?? 0) < minIntervalMs) return;
      if (redis.status !== 'ready') return;
      lastWritten.set(queue, at);
      redis
        .multi()
        .zadd(key(queue), at, processId)
        .zremrangebyscore(key(queue), '-inf', at - RETAIN_MS)
        .pexpire(key(queue), RETAIN_MS)
        .exec()
        .catch(() => lastWritten.delete(queue));
    },

    /** Per queue, the processes that took a job within the last hour and when (ms since the epoch), newest first. */
    async read(queues: readonly string[]): Promise<Map<string, Array<{ process: string; at: number }>>> {
      const pipeline = redis.pipeline();
      for (const queue of queues) pipeline.zrevrange(key(queue), 0, 99, 'WITHSCORES');
      const results = (await pipeline.exec()) ?? [];
      const out = new Map<string, Array<{ process: string; at: number }>>();
      queues.forEach((queue, i) => {
        const [error, reply] = results[i] ?? [new Error('no reply'), null];
        if (error) throw error;
        const flat = (reply as string[] | null) ?? [];
        const entries: Array<{ process: string; at: number }> = [];
        for (let j = 0; j + 1 < flat.length; j += 2) entries.push({ process: flat[j]!, at: Number(flat[j + 1]) });
        out.set(queue, entries);
      });
      return out;
    },
  };
}

export type Heartbeat = ReturnType<typeof createHeartbeat>;
