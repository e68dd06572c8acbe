import { describe, expect, it } from 'vitest';
import { queuePrefix } from '../../src/adapters/bullmq/job-options.js';
import { describeRedis } from '../../src/adapters/redis/connections.js';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('REDIS_CLUSTER_NODES', () => {
  it('makes the prefix a hash tag and gives every queue a tag of its own', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b.internal:7001', QUEUE_PREFIX: 'hj' });
    expect(config.redis.clusterNodes).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-b.internal', port: 7001 },
    ]);
    expect(config.queue.prefix).toBe('{hj}');
    expect(queuePrefix(config.queue.prefix, 'intent-classification')).toBe('{hj:intent-classification}');
    expect(describeRedis(config.redis)).toBe('the Redis Cluster (10.0.0.1:7000, redis-b.internal:7001)');
  });

  it('leaves a single Redis as it was', () => {
    const config = loadConfig({ QUEUE_PREFIX: 'hj', REDIS_URL: 'redis://:secret@cache.internal:6380' });
    expect(config.redis.clusterNodes).toBeUndefined();
    expect(config.queue.prefix).toBe('hj');
    expect(queuePrefix(config.queue.prefix, 'intent-classification')).toBe('hj');
    expect(describeRedis(config.redis)).toBe('Redis (cache.internal:6380)');
  });

  it('refuses what is not a list of host:port pairs', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://a:7000' })).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000,b' })).toThrow(/REDIS_CLUSTER_NODES/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:70000' })).toThrow(/port out of range/);
  });
});
