import { defineConfig } from 'vitest/config';

/** Tests that need no PostgreSQL or Redis: no global setup, nothing to connect to. */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    testTimeout: 10_000,
    pool: 'threads',
    reporters: ['default'],
  },
});
