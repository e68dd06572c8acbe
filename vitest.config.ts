import { defineConfig } from 'vitest/config';

/**
 * The suites that use the queues run once per transport: every test on Redis (the `redis`
 * project), and these again on PostgreSQL (the `postgres` project). TEST_QUEUE_BACKEND tells the
 * test helpers (test/support/transport.ts) which one a file runs on.
 */
const QUEUE_SUITES = [
  'test/queue/*.test.ts',
  'test/queue/processes/sigkill-recovery.test.ts',
  'test/queue/processes/sigterm-drain.test.ts',
  'test/queue/processes/rocketreach-concurrency.test.ts',
  'test/monitoring/health.test.ts',
  'test/monitoring/alerts.test.ts',
  'test/monitoring/autoscaling.test.ts',
  'test/monitoring/metrics.test.ts',
  'test/http/dashboard.test.ts',
];
/**
 * Redis itself is what these test (Redis down, flushed; the batcher on a Redis queue), or they cover
 * both transports themselves (the choice of one): they run once.
 */
const REDIS_ONLY = ['test/queue/degraded.test.ts', 'test/queue/add-batcher.test.ts', 'test/queue/transport-choice.test.ts', 'test/queue/redis-responsiveness.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'redis', include: ['test/**/*.test.ts'], env: { TEST_QUEUE_BACKEND: 'redis' } } },
      { extends: true, test: { name: 'postgres', include: QUEUE_SUITES, exclude: REDIS_ONLY, env: { TEST_QUEUE_BACKEND: 'postgres' } } },
    ],
  },
});
