import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { closeRedis, createRedisConnection, waitUntilReady, watchResponsiveness, type RedisClient } from '../../src/adapters/redis/connections.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';
import { waitUntil } from '../support/processes.js';

/*
 * A Redis that keeps the connection but stops answering (SIGSTOP) leaves ioredis `ready`: the
 * responsiveness watch is what says it is gone, and that it is back once it answers again.
 */

let redis: RedisServer;
let client: RedisClient;

beforeAll(async () => {
  redis = await startRedisServer();
  client = createRedisConnection(redis.url, 'producer', pino({ level: 'silent' }));
  await waitUntilReady(client, 5_000);
});

afterAll(async () => {
  redis.resume();
  await closeRedis(client);
  await stopAllRedisServers();
});

describe('watching whether Redis answers', () => {
  it('is unresponsive while a connected Redis answers nothing, and responsive again once it answers', async () => {
    const watch = watchResponsiveness(client, { intervalMs: 50, timeoutMs: 300 });
    try {
      await waitUntil(async () => watch.responsive(), { timeoutMs: 2_000, what: 'the first answer' });
      redis.hang();
      const hungAt = Date.now();
      await waitUntil(async () => !watch.responsive(), { timeoutMs: 3_000, intervalMs: 20, what: 'the watch to notice' });
      // The connection itself saw nothing.
      expect(client.status).toBe('ready');
      expect(Date.now() - hungAt).toBeGreaterThanOrEqual(300);
      redis.resume();
      await waitUntil(async () => watch.responsive(), { timeoutMs: 3_000, intervalMs: 20, what: 'the watch to see Redis answer again' });
    } finally {
      watch.stop();
    }
  });
});
