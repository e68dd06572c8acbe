import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export type ConnectionRole = 'producer' | 'worker' | 'subscriber' | 'commands';

/**
 * Redis connections, one per role, with BullMQ's production settings: workers block and retry
 * forever (`maxRetriesPerRequest: null`); producers fail fast (no offline queue) so that the API
 * notices at once that Redis is gone and serves in degraded mode instead of hanging.
 */
export function createRedisConnection(url: string, role: ConnectionRole, logger: Logger): Redis {
  const options: RedisOptions = {
    connectionName: `honeyjar-${role}`,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
    ...(role === 'worker' || role === 'subscriber'
      ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 2_000 }),
  };
  const redis = new Redis(url, options);
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

/**
 * Resolves when the connection is ready, or rejects after `timeoutMs` without closing it — at once
 * when the connection is refused (nothing listens there: no point in waiting out the timeout).
 */
export function waitUntilReady(redis: Redis, timeoutMs: number): Promise<void> {
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
export async function closeRedis(redis: Redis): Promise<void> {
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
