/**
 * The private servers of test/support: they start, serve, survive a crash or a hang with what
 * was committed before it, and are cleaned up.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startPostgresServer, stopAllPostgresServers } from './postgres-server.js';
import { startRedisServer, stopAllRedisServers } from './redis-server.js';

afterAll(async () => {
  await stopAllRedisServers();
  await stopAllPostgresServers();
});

function redisClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null, commandTimeout: 1_000 });
}

async function pgQuery<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('a private Redis', () => {
  it('keeps data across kill and restart with appendonly, on the same port', async () => {
    const redis = await startRedisServer({ appendonly: true });
    const client = redisClient(redis.url);
    await client.connect();
    await client.set('kept', 'yes');
    client.disconnect();
    const before = redis.pid;
    await redis.kill();
    expect(redis.running).toBe(false);
    await redis.restart();
    expect(redis.pid).not.toBe(before);
    const again = redisClient(redis.url);
    await again.connect();
    expect(await again.get('kept')).toBe('yes');
    again.disconnect();
    await redis.stop();
    expect(redis.running).toBe(false);
  });

  it('loses data across a restart without appendonly', async () => {
    const redis = await startRedisServer();
    const client = redisClient(redis.url);
    await client.connect();
    await client.set('lost', 'yes');
    client.disconnect();
    await redis.restart();
    const again = redisClient(redis.url);
    await again.connect();
    expect(await again.get('lost')).toBeNull();
    again.disconnect();
  });

  it('hangs: commands time out; answers again after resume', async () => {
    const redis = await startRedisServer();
    const client = redisClient(redis.url);
    await client.connect();
    redis.hang();
    await expect(client.ping()).rejects.toThrow(/timed out/i);
    redis.resume();
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });
});

describe('a private PostgreSQL', () => {
  it('creates a migrated database, crashes, recovers what was committed, and hangs', async () => {
    const server = await startPostgresServer();
    const url = await server.createDatabase();
    // Migrated: the application's tables are there.
    const tables = await pgQuery<{ n: number }>(url, `select count(*)::int as n from information_schema.tables where table_name in ('runs', 'messages')`);
    expect(tables[0]!.n).toBe(2);
    await pgQuery(url, 'create table kept (v text)');
    await pgQuery(url, `insert into kept values ('committed')`);
    const startedBefore = (await pgQuery<{ at: Date }>(url, 'select pg_postmaster_start_time() as at'))[0]!.at;

    // A client holding a connection sees it die with the crash.
    const held = new pg.Client({ connectionString: url });
    held.on('error', () => undefined);
    await held.connect();
    const port = server.port;
    await server.crash();
    expect(server.running).toBe(false);
    await expect(held.query('select 1')).rejects.toThrow();
    await expect(pgQuery(url, 'select 1')).rejects.toThrow();

    await server.restart();
    expect(server.port).toBe(port);
    expect(await pgQuery(url, 'select v from kept')).toEqual([{ v: 'committed' }]);
    const startedAfter = (await pgQuery<{ at: Date }>(url, 'select pg_postmaster_start_time() as at'))[0]!.at;
    expect(startedAfter.getTime()).toBeGreaterThan(startedBefore.getTime());

    // Hung: a connection attempt gets no answer; after resume it does.
    server.hang();
    const hung = new pg.Client({ connectionString: url, connectionTimeoutMillis: 500 });
    await expect(hung.connect()).rejects.toThrow(/timeout/i);
    server.resume();
    expect(await pgQuery(url, 'select v from kept')).toEqual([{ v: 'committed' }]);

    await server.stop();
    expect(server.running).toBe(false);
    await expect(pgQuery(url, 'select 1')).rejects.toThrow();
  }, 60_000);

  it('never runs as root and leaves no directory behind', async () => {
    const server = await startPostgresServer();
    const [row] = await pgQuery<{ dir: string }>(server.url(), `select current_setting('data_directory') as dir`);
    expect(existsSync(row!.dir)).toBe(true);
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1];
    expect(Number(uid)).not.toBe(0);
    await server.stop();
    expect(existsSync(row!.dir)).toBe(false);
  }, 60_000);
});
