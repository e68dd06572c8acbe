import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { buildApp } from '../../src/app.js';
import { bootstrapOrganization } from '../../src/admin/bootstrap.js';
import { loadConfig } from '../../src/config.js';
import { createContainer, type Container } from '../../src/container.js';
import { createLogger } from '../../src/logger.js';
import type { App } from '../../src/http/types.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { testTransport } from './transport.js';

export { testTransport };
import { stageOrder } from '../../src/engine/dag.js';
import type { Catalog } from '../../src/engine/catalog.js';
import { startQueueSystem, type QueueSystem } from '../../src/queue/queue-system.js';

export interface Tenant {
  orgId: string;
  userId: string;
  token: string;
  headers: Record<string, string>;
}

export interface TestApp {
  app: App;
  container: Container;
  database: TestDatabase;
  /** A new organization and its admin; with `operator` the admin is also a system operator. */
  tenant(name?: string, email?: string, options?: { operator?: boolean }): Promise<Tenant>;
  /** Another user of an existing organization, with the member role and a token of their own. */
  memberOf(org: Tenant, email: string): Promise<Tenant>;
  /** inject() with a tenant's credentials. */
  as(tenant: Tenant, options: InjectOptions): Promise<LightMyRequestResponse>;
  /** The in-process queue system, when started with `workers`. */
  queueSystem: QueueSystem | undefined;
  close(): Promise<void>;
}

let tenants = 0;

/** A server on its own fresh database, driven through inject(). */
export async function createTestApp(env: Record<string, string> = {}, options: { workers?: boolean; logger?: Logger; catalog?: Catalog } = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const config = loadConfig({
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
    DATABASE_POOL_MAX: '10',
    QUEUE_PREFIX: `test-${database.name}`,
    QUEUE_BACKEND: testTransport,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    // Several test files run at once, each with its own queue pool.
    QUEUE_POSTGRES_POOL_MAX: '4',
    // Tests send many requests without valid credentials from one address; the limiter's own test sets it low.
    AUTH_FAILURE_RATE_LIMIT_MAX: '1000000',
    ...env,
  }, options.catalog);
  // A logger given is used everywhere (container, workers, HTTP), as in a server process.
  const container = createContainer(config, options.logger ?? createLogger('silent'));
  const logger = options.logger ?? createLogger('silent');
  const queueSystem = options.workers ? await startQueueSystem(container, stageOrder(config.catalog), logger) : undefined;
  const app = await buildApp(container, { logger: options.logger ?? false });
  await app.ready();
  return {
    app,
    container,
    database,
    queueSystem,
    async tenant(name = `Org ${++tenants}`, email = `admin${tenants}@${name.replace(/\W+/g, '').toLowerCase() || 'org'}.test`, options = {}) {
      const result = await bootstrapOrganization(container.repositories.tenancy, name, email, options);
      return { ...result, headers: { authorization: `Bearer ${result.token}`, 'x-organization-id': result.orgId } };
    },
    async memberOf(org, email) {
      const tenancy = container.repositories.tenancy;
      const user = await tenancy.upsertUser(email);
      await tenancy.setMembership(org.orgId, user.id, 'member');
      const { token } = await tenancy.createToken(user.id, 'member token');
      return { orgId: org.orgId, userId: user.id, token, headers: { authorization: `Bearer ${token}`, 'x-organization-id': org.orgId } };
    },
    as(tenant, options) {
      return app.inject({ ...options, headers: { ...tenant.headers, ...(options.headers ?? {}) } });
    },
    async close() {
      await app.close();
      await queueSystem?.close(5_000);
      await container.close();
      // After everything is closed: closing queues still writes their metadata.
      if (container.transport === 'redis') await clearQueues(container.config.redis.url, container.config.queue.prefix).catch(() => undefined);
      await database.drop();
    },
  };
}

/** Removes every Redis key of this test's queue prefix, on a connection of its own. */
async function clearQueues(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1_000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Polls `check` until it returns a value (not undefined/false) or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
