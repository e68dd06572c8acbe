/**
 * Which transport a process uses, and that the processes of one system never split across two:
 * the first start records its choice in the database; later starts follow it, and one configured
 * otherwise refuses to start with the reason in one line. Covers both transports itself, so it
 * runs once (the redis project).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { chooseTransport, QueueBackendMismatchError } from '../../src/queue/transport-choice.js';
import { readSystemSetting } from '../../src/adapters/postgres/system-settings.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort } from '../support/ports.js';
import { killAll, REDIS_URL, runCli, serverEnv, startServerProcess } from '../support/processes.js';

const logger = createLogger('silent');
const databases: TestDatabase[] = [];

afterAll(async () => {
  await killAll();
  await Promise.all(databases.map((database) => database.drop()));
}, 30_000);

async function database(): Promise<TestDatabase> {
  const created = await createTestDatabase();
  databases.push(created);
  return created;
}

function configFor(db: TestDatabase, env: Record<string, string> = {}) {
  return loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent', ...env });
}

describe('the transport of a system', () => {
  it('without QUEUE_BACKEND and REDIS_URL: PostgreSQL, recorded, and kept when Redis is offered later', async () => {
    const db = await database();
    expect(await chooseTransport(configFor(db), logger)).toEqual({ backend: 'postgres', reason: 'REDIS_URL is not set (now recorded for this system)' });
    expect(await readSystemSetting(db.pool, 'queue_backend')).toBe('postgres');
    // A later start never switches silently, even where Redis answers now.
    expect(await chooseTransport(configFor(db, { REDIS_URL }), logger)).toEqual({ backend: 'postgres', reason: 'recorded for this system by its first start' });
  });

  it('without QUEUE_BACKEND: Redis when REDIS_URL answers, PostgreSQL when it does not', async () => {
    const withRedis = await database();
    expect((await chooseTransport(configFor(withRedis, { REDIS_URL }), logger)).backend).toBe('redis');
    expect(await readSystemSetting(withRedis.pool, 'queue_backend')).toBe('redis');

    const redisDown = await database();
    const started = Date.now();
    expect(await chooseTransport(configFor(redisDown, { REDIS_URL: `redis://127.0.0.1:${await freePort()}` }), logger)).toEqual({
      backend: 'postgres',
      reason: 'REDIS_URL does not answer (now recorded for this system)',
    });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('QUEUE_BACKEND is recorded by the first start; a process configured otherwise refuses, saying why', async () => {
    const db = await database();
    expect((await chooseTransport(configFor(db, { QUEUE_BACKEND: 'postgres' }), logger)).backend).toBe('postgres');
    expect((await chooseTransport(configFor(db, { QUEUE_BACKEND: 'postgres' }), logger)).reason).toBe('QUEUE_BACKEND, as recorded for this system');
    const refusal = await chooseTransport(configFor(db, { QUEUE_BACKEND: 'redis', REDIS_URL }), logger).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(QueueBackendMismatchError);
    expect((refusal as Error).message).toBe(
      "QUEUE_BACKEND=redis, but this system's queues are on postgres (recorded in the database by its first start): " +
        'start every process with QUEUE_BACKEND=postgres, or stop them all and run `honeyjar queue-backend redis`',
    );
  });

  it('a worker process on the other transport refuses to start with that line; `queue-backend` shows and changes the record', async () => {
    const db = await database();
    const env = serverEnv({ databaseUrl: db.url, prefix: `choice-${db.name}` }, { QUEUE_BACKEND: 'postgres' });
    expect(await runCli(['queue-backend'], env)).toMatchObject({ code: 0, stdout: '{"queueBackend":null}' });
    const worker = await startServerProcess('worker', env, { name: 'postgres worker' });
    worker.signal('SIGTERM');
    expect((await worker.waitForExit(15_000)).code).toBe(0);

    const refused = await startServerProcess('worker', { ...env, QUEUE_BACKEND: 'redis' }, { name: 'redis worker' }).catch((error: unknown) => error);
    expect(String(refused)).toContain("could not start: QUEUE_BACKEND=redis, but this system's queues are on postgres");

    expect(await runCli(['queue-backend', 'redis'], env)).toMatchObject({ code: 0, stdout: '{"queueBackend":"redis","previous":"postgres"}' });
    const moved = await startServerProcess('worker', { ...env, QUEUE_BACKEND: 'redis' }, { name: 'redis worker after the move' });
    moved.signal('SIGTERM');
    expect((await moved.waitForExit(15_000)).code).toBe(0);
    expect(await runCli(['queue-backend', 'kafka'], env)).toMatchObject({ code: 2 });
  }, 60_000);
});
