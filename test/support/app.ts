import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.js';
import { bootstrapOrganization } from '../../src/admin/bootstrap.js';
import { loadConfig } from '../../src/config.js';
import { createContainer, type Container } from '../../src/container.js';
import { createLogger } from '../../src/logger.js';
import type { App } from '../../src/http/types.js';
import { createTestDatabase, type TestDatabase } from './database.js';

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
  tenant(name?: string, email?: string): Promise<Tenant>;
  /** inject() with a tenant's credentials. */
  as(tenant: Tenant, options: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

let tenants = 0;

/** A server on its own fresh database, driven through inject(). */
export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const config = loadConfig({
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
    DATABASE_POOL_MAX: '10',
    QUEUE_PREFIX: `test-${database.name}`,
    ...env,
  });
  const container = createContainer(config, createLogger('silent'));
  const app = await buildApp(container, { logger: false });
  await app.ready();
  return {
    app,
    container,
    database,
    async tenant(name = `Org ${++tenants}`, email = `admin${tenants}@${name.replace(/\W+/g, '').toLowerCase() || 'org'}.test`) {
      const result = await bootstrapOrganization(container.repositories.tenancy, name, email);
      return { ...result, headers: { authorization: `Bearer ${result.token}`, 'x-organization-id': result.orgId } };
    },
    as(tenant, options) {
      return app.inject({ ...options, headers: { ...tenant.headers, ...(options.headers ?? {}) } });
    },
    async close() {
      await app.close();
      await container.close();
      await database.drop();
    },
  };
}
