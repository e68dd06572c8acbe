import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from '../../domain/errors.js';

/**
 * Per-organization request limit, shared by every API process through Redis (fixed window). When
 * Redis is unreachable the limit is not enforced rather than refusing every request.
 */
export function registerRateLimit(app: FastifyInstance, redis: Redis, options: { max: number; windowMs: number; prefix: string }): void {
  app.addHook('onRequest', async (request, reply) => {
    const orgId = request.actor?.orgId;
    if (!orgId || redis.status !== 'ready') return;
    const window = Math.floor(Date.now() / options.windowMs);
    const key = `${options.prefix}:ratelimit:${orgId}:${window}`;
    let count: number;
    try {
      const results = await redis.multi().incr(key).pexpire(key, options.windowMs + 1_000).exec();
      count = Number(results?.[0]?.[1] ?? 0);
    } catch {
      return;
    }
    const remaining = Math.max(0, options.max - count);
    const resetMs = (window + 1) * options.windowMs - Date.now();
    reply.header('x-ratelimit-limit', options.max);
    reply.header('x-ratelimit-remaining', remaining);
    if (count > options.max) {
      reply.header('retry-after', Math.max(1, Math.ceil(resetMs / 1000)));
      throw new AppError('rate_limited', 429, `Too many requests for this organization: ${options.max} per ${options.windowMs} ms`);
    }
  });
}
