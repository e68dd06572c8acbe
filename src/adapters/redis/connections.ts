import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export type ConnectionRole = 'producer' | 'worker' | 'subscriber' | 'commands';

/** One Redis, or a Redis Cluster: both speak the same commands to everything here. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL, or the seed nodes of a cluster (config.redis). */
export interface RedisTarget {
  url: string;
  clusterNodes?: ReadonlyArray<{ host: string; port: number }> | undefined;
}

/**
 * Redis connections, one per role, with BullMQ's production settings: workers block and retry
 * forever (`maxRetriesPerRequest: null`); producers fail fast (no offline queue) so that the API
 * notices at once that Redis is gone and serves in degraded mode instead of hanging.
 */
export function createRedisConnection(target: string | RedisTarget, role: ConnectionRole, logger: Logger): RedisClient {
  const { url, clusterNodes } = typeof target === 'string' ? { url: target, clusterNodes: undefined } : target;
  const blocking = role === 'worker' || role === 'subscriber';
  const retry = (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2_000);
  const options: RedisOptions = {
    connectionName: `honeyjar-${role}`,
    connectTimeout: 2_000,
    retryStrategy: retry,
    ...(blocking ? { maxRetriesPerRequest: null, enableOfflineQueue: true } : { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 2_000 }),
  };
  const redis: RedisClient =
    clusterNodes && clusterNodes.length > 0
      ? // A cluster: the same per-connection settings for every node; the offline queue and the
        // reconnect backoff are the cluster's own.
        new Cluster([...clusterNodes], {
          redisOptions: options,
          clusterRetryStrategy: retry,
          enableOfflineQueue: blocking,
          slotsRefreshTimeout: 2_000,
        })
      : new Redis(url, options);
  let lastLogged = 0;
  redis.on('error', (error: Error) => {
    // A down Redis errors on every retry; once every 10 s in the log is enough.
    const now = Date.now();
    if (now - lastLogged > 10_000) {
      lastLogged = now;
      logger.warn({ role, err: { message: error.message } }, 'Redis connection error');
    }
  });
  return redis;
}

export interface Responsiveness {
  /** False from a PING that failed or went unanswered for `timeoutMs` until the next one answered. */
  responsive(): boolean;
  stop(): void;
}

/**
 * Whether a connection that looks connected answers. ioredis stays `ready` with a Redis that
 * keeps the connection but stops answering (stopped, swapping, a partition that resets nothing):
 * its commands time out one by one, and nothing that goes by the connection's status notices. A
 * PING every `intervalMs` does: `responsive()` is false from the first PING that fails or is not
 * answered within `timeoutMs`, until one is answered.
 */
export function watchResponsiveness(redis: RedisClient, options: { intervalMs?: number; timeoutMs?: number } = {}): Responsiveness {
  const intervalMs = options.intervalMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 2_000;
  let answering = true;
  let pingSentAt: number | undefined;
  const timer = setInterval(() => {
    if (pingSentAt !== undefined) {
      if (Date.now() - pingSentAt >= timeoutMs) answering = false;
      return;
    }
    // A connection that is down or reconnecting says so itself.
    if (redis.status !== 'ready') return;
    const sentAt = Date.now();
    pingSentAt = sentAt;
    redis
      .ping()
      .then(
        () => {
          answering = true;
        },
        () => {
          answering = false;
        },
      )
      .finally(() => {
        if (pingSentAt === sentAt) pingSentAt = undefined;
      });
  }, intervalMs);
  timer.unref();
  return {
    responsive: () => answering,
    stop: () => clearInterval(timer),
  };
}

/** Names the Redis for the start-up lines: its address, or a cluster's seed nodes; never a password. */
export function describeRedis(target: RedisTarget): string {
  if (target.clusterNodes && target.clusterNodes.length > 0) {
    return `the Redis Cluster (${target.clusterNodes.map((node) => `${node.host}:${node.port}`).join(', ')})`;
  }
  return `Redis (${new URL(target.url).host})`;
}

/**
 * Resolves when the connection is ready, or rejects after `timeoutMs` without closing it — at once
 * when the connection is refused (nothing listens there: no point in waiting out the timeout).
 */
export function waitUntilReady(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => settle(new Error(`Redis not ready after ${timeoutMs} ms`)), timeoutMs);
    const onReady = () => settle();
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') settle(new Error(`Redis refused the connection: ${error.message}`));
    };
    redis.once('ready', onReady);
    redis.on('error', onError);
  });
}

/** Closes politely (QUIT) and, when Redis does not answer within a second, hangs up. */
export async function closeRedis(redis: RedisClient): Promise<void> {
  if (redis.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.quit(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('quit timed out')), 1_000);
      }),
    ]);
  } catch {
    redis.disconnect();
  } finally {
    clearTimeout(timer);
  }
}
