import type { Logger } from 'pino';
import type { Coordination } from '../../engine/ports/coordination.js';
import { closeRedis, createRedisConnection, waitUntilReady, type RedisClient, type RedisTarget } from './connections.js';

/**
 * The coordination port over Redis: values are strings with PX, counters INCRBY + PEXPIRE, marks
 * sorted sets scored by time, fields hashes, signals pub/sub on a subscriber connection of its own
 * (opened by the first subscribe). Commands go through the given fail-fast connection.
 */
export function createRedisCoordination(options: { redis: RedisClient; target: RedisTarget; logger: Logger; responsive?: () => boolean }): Coordination {
  const { redis, logger } = options;
  const responsive = options.responsive ?? (() => true);
  let subscriber: RedisClient | undefined;
  const handlers = new Map<string, Set<(message: string) => void>>();

  const replies = async (pipeline: ReturnType<RedisClient['pipeline']>): Promise<unknown[]> => {
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, value]) => {
      if (error) throw error;
      return value;
    });
  };

  return {
    kind: 'redis',
    available: () => redis.status === 'ready' && responsive(),
    async ready(timeoutMs) {
      if (redis.status === 'ready') return true;
      if (redis.status !== 'connecting' && redis.status !== 'connect' && redis.status !== 'wait') return false;
      return waitUntilReady(redis, timeoutMs).then(
        () => true,
        () => false,
      );
    },
    async ping() {
      await redis.ping();
    },
    async version() {
      const info = await redis.info('server');
      return /redis_version:(\S+)/.exec(info)?.[1] ?? null;
    },

    async getValue(key) {
      return (await redis.get(key)) ?? undefined;
    },
    async setValue(key, value, ttlMs, opts = {}) {
      const reply = opts.onlyIfAbsent ? await redis.set(key, value, 'PX', ttlMs, 'NX') : await redis.set(key, value, 'PX', ttlMs);
      return reply === 'OK';
    },
    async deleteValue(key, opts = {}) {
      if (opts.ifEquals === undefined) {
        await redis.del(key);
        return;
      }
      // Compare and delete in one step, so that a value set by another process in between survives.
      await redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0", 1, key, opts.ifEquals);
    },
    async expireValue(key, ttlMs) {
      await redis.pexpire(key, ttlMs);
    },

    async addToCounters(adds) {
      if (adds.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const add of adds) pipeline.incrby(add.key, add.by).pexpire(add.key, add.ttlMs);
      const values = await replies(pipeline);
      return adds.map((_, i) => Number(values[i * 2]));
    },

    async mark(key, member, at, opts) {
      await redis.multi().zadd(key, at, member).zremrangebyscore(key, '-inf', `(${opts.forgetBefore}`).pexpire(key, opts.ttlMs).exec();
    },
    async countMarks(keys, since) {
      if (keys.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.zcount(key, since, '+inf');
      return (await replies(pipeline)).map((value) => Number(value ?? 0));
    },
    async newestMarks(keys, limit) {
      if (keys.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.zrevrange(key, 0, limit - 1, 'WITHSCORES');
      return (await replies(pipeline)).map((reply) => {
        const flat = (reply as string[] | null) ?? [];
        const entries: Array<{ member: string; at: number }> = [];
        for (let j = 0; j + 1 < flat.length; j += 2) entries.push({ member: flat[j]!, at: Number(flat[j + 1]) });
        return entries;
      });
    },

    async setField(key, field, value, ttlMs) {
      await redis.multi().hset(key, field, value).pexpire(key, ttlMs).exec();
    },
    async getFields(key) {
      return redis.hgetall(key);
    },
    async deleteFields(key, fields) {
      if (fields.length) await redis.hdel(key, ...fields);
    },

    async publish(channel, message) {
      await redis.publish(channel, message);
    },
    async subscribe(channel, onMessage) {
      if (!subscriber) {
        subscriber = createRedisConnection(options.target, 'subscriber', logger);
        subscriber.on('message', (from: string, payload: string) => {
          for (const handler of handlers.get(from) ?? []) handler(payload);
        });
      }
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await subscriber.subscribe(channel);
      }
      set.add(onMessage);
      return async () => {
        set.delete(onMessage);
      };
    },

    async close() {
      handlers.clear();
      if (subscriber) await closeRedis(subscriber);
    },
  };
}
