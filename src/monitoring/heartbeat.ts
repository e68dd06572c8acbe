import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Coordination } from '../engine/ports/coordination.js';

/** Entries of processes that have not fetched for this long are dropped (a process that died). */
const RETAIN_MS = 60 * 60_000;

/**
 * The "a worker took a job from this queue" signal, shared by every process through the
 * coordination store: one set of marks per queue, `<prefix>:monitoring:heartbeat:<queue>` (a sorted
 * set on Redis), whose members are worker processes at the time (ms) they last took a job. A worker writes when it takes a job, at
 * most once per `minIntervalMs` per queue; the health check compares the newest score with the age
 * of the oldest waiting job. A worker whose connection still answers PING but no longer fetches
 * stops writing, and shows.
 *
 * Writes go through the container's fail-fast connection and never wait or throw: when the store
 * is down there is nothing to consume anyway.
 */
export function createHeartbeat(options: { coordination: Coordination; prefix: string; minIntervalMs?: number; now?: () => number }) {
  const { coordination, prefix } = options;
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
      if (!coordination.available()) return;
      lastWritten.set(queue, at);
      coordination.mark(key(queue), processId, at, { forgetBefore: at - RETAIN_MS, ttlMs: RETAIN_MS }).catch(() => lastWritten.delete(queue));
    },

    /** Per queue, the processes that took a job within the last hour and when (ms since the epoch), newest first. */
    async read(queues: readonly string[]): Promise<Map<string, Array<{ process: string; at: number }>>> {
      const marks = await coordination.newestMarks(queues.map(key), 100);
      return new Map(queues.map((queue, i) => [queue, (marks[i] ?? []).map(({ member, at }) => ({ process: member, at }))]));
    },
  };
}

export type Heartbeat = ReturnType<typeof createHeartbeat>;
