import type { TestApp } from './app.js';

/**
 * What a test's server keeps in its coordination store under a key prefix, read straight from the
 * store (Redis keys, or the coordination tables on PostgreSQL), for tests that check where and how
 * something is kept.
 */
export async function storedValues(t: TestApp, prefix: string): Promise<Array<{ key: string; value: string; ttlMs: number }>> {
  const redis = t.container.redis;
  if (redis) {
    const keys = await redis.keys(`${prefix}*`);
    return Promise.all(keys.map(async (key) => ({ key, value: (await redis.get(key)) ?? '', ttlMs: await redis.pttl(key) })));
  }
  const { rows } = await t.database.pool.query<{ key: string; value: string; ttl_ms: string }>(
    `select key, value, (extract(epoch from expires_at - now()) * 1000)::bigint::text as ttl_ms
       from coordination_values where starts_with(key, $1) and expires_at > now()`,
    [prefix],
  );
  return rows.map((row) => ({ key: row.key, value: row.value, ttlMs: Number(row.ttl_ms) }));
}

/** The keys of the marks (heartbeats, stalls) under a prefix. */
export async function storedMarkKeys(t: TestApp, prefix: string): Promise<string[]> {
  const redis = t.container.redis;
  if (redis) return redis.keys(`${prefix}*`);
  const { rows } = await t.database.pool.query<{ key: string }>(
    'select distinct key from coordination_marks where starts_with(key, $1) and expires_at > now()',
    [prefix],
  );
  return rows.map((row) => row.key);
}
