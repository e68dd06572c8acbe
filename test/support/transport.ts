/**
 * The transport the queue tests run on: `redis` (default) or `postgres`, from TEST_QUEUE_BACKEND
 * (vitest.config.ts runs the queue suites once per transport, as two projects).
 */
export const testTransport: 'redis' | 'postgres' = process.env.TEST_QUEUE_BACKEND === 'postgres' ? 'postgres' : 'redis';
