import { randomUUID } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import pg from 'pg';
import { buildApp } from '../../src/app.js';
import { isDatabaseUnavailable } from '../../src/adapters/postgres/errors.js';
import { bootstrapOrganization } from '../../src/admin/bootstrap.js';
import { loadConfig } from '../../src/config.js';
import { createContainer, type Container } from '../../src/container.js';
import { createLogger } from '../../src/logger.js';
import type { App } from '../../src/http/types.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/** A TCP relay to PostgreSQL that a test can cut (connections dropped, port closed) and restore. */
interface Relay {
  port: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

async function startRelay(target: { host: string; port: number }): Promise<Relay> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(target.port, target.host);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => socket.destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return { port, cut: stop, restore: () => (server ? Promise.resolve() : listen()), close: stop };
}

/** A port nothing listens on: one the system just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startServer(databaseUrl: string, prefix: string): Promise<{ container: Container; app: App }> {
  const config = loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '4', QUEUE_PREFIX: prefix, ALERTS_INTERVAL_MS: '0' });
  const container = createContainer(config, createLogger('silent'));
  const app = await buildApp(container, { logger: false });
  return { container, app };
}

/** Every route that reads or writes PostgreSQL, as a client would call it. */
function everyRoute(ids: { threadId: string; batchId: string; documentId: string; alertId: string }): Array<{ method: 'GET' | 'POST' | 'DELETE'; url: string; payload?: object }> {
  const chat = '/api/v1/chat';
  return [
    { method: 'POST', url: `${chat}/threads`, payload: { title: 'x' } },
    { method: 'GET', url: `${chat}/threads` },
    { method: 'GET', url: `${chat}/threads/${ids.threadId}` },
    { method: 'GET', url: `${chat}/threads/${ids.threadId}/messages` },
    { method: 'POST', url: `${chat}/threads/${ids.threadId}/messages`, payload: { content: 'hello' } },
    { method: 'POST', url: `${chat}/threads/${ids.threadId}/messages/queued`, payload: { content: 'hello' } },
    { method: 'POST', url: `${chat}/comprehensive`, payload: { message: 'hello' } },
    { method: 'GET', url: `${chat}/batch/${ids.batchId}/results` },
    { method: 'POST', url: `${chat}/jobs/status`, payload: { jobIds: [`${ids.batchId}.intent`] } },
    { method: 'POST', url: `${chat}/jobs/cancel`, payload: { jobIds: [`${ids.batchId}.intent`] } },
    { method: 'GET', url: `${chat}/jobs/queue-stats` },
    { method: 'GET', url: `${chat}/jobs/failed` },
    { method: 'GET', url: `${chat}/system/health/detailed` },
    { method: 'GET', url: `${chat}/system/metrics` },
    { method: 'GET', url: `${chat}/system/alerts` },
    { method: 'POST', url: `${chat}/system/alerts/${ids.alertId}/acknowledge` },
    { method: 'GET', url: `${chat}/system/queue-status` },
    { method: 'POST', url: '/api/v1/documents', payload: { title: 'x', content: 'y' } },
    { method: 'GET', url: '/api/v1/documents' },
    { method: 'GET', url: `/api/v1/documents/${ids.documentId}` },
    { method: 'DELETE', url: `/api/v1/documents/${ids.documentId}` },
  ];
}

function expectUnavailable(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, what: string): void {
  expect(res.statusCode, what).toBe(503);
  expect(res.json(), what).toEqual({ error: { code: 'database_unavailable', message: expect.any(String) } });
  expect(Number(res.headers['retry-after']), what).toBeGreaterThan(0);
}

describe('isDatabaseUnavailable', () => {
  const sqlstate = (code: string) => Object.assign(new pg.DatabaseError('x', 1, 'error'), { code, severity: 'FATAL' });
  it('tells a lost or refused connection from a failed query, through Drizzle\'s wrapper', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    for (const error of [
      refused,
      new DrizzleQueryError('select 1', [], refused),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      sqlstate('57P01'),
      sqlstate('53300'),
      sqlstate('08006'),
    ]) {
      expect(isDatabaseUnavailable(error), error.message).toBe(true);
    }
    for (const error of [sqlstate('23505'), sqlstate('42P01'), sqlstate('57014'), new Error('boom'), new DrizzleQueryError('select 1', [], sqlstate('22P02')), undefined, 'ECONNREFUSED']) {
      expect(isDatabaseUnavailable(error), String(error)).toBe(false);
    }
  });
});

describe('PostgreSQL unreachable from the start (nothing listens on its port)', () => {
  let server: { container: Container; app: App };
  beforeAll(async () => {
    server = await startServer(`postgres://postgres@127.0.0.1:${await closedPort()}/honeyjar_nowhere`, `test-nodb-${randomUUID()}`);
  });
  afterAll(async () => {
    await server.app.close();
    await server.container.close();
  });

  it('answers 503 database_unavailable with Retry-After on every route', async () => {
    const headers = { authorization: 'Bearer hj_unknown', 'x-organization-id': randomUUID() };
    const ids = { threadId: randomUUID(), batchId: randomUUID(), documentId: randomUUID(), alertId: randomUUID() };
    for (const route of everyRoute(ids)) {
      const res = await server.app.inject({ ...route, headers });
      expectUnavailable(res, `${route.method} ${route.url}`);
    }
    const session = await server.app.inject({ method: 'POST', url: '/dashboard/session', payload: { token: 'hj_unknown', orgId: randomUUID() } });
    expectUnavailable(session, 'POST /dashboard/session');
    // The health check keeps its own answer: unhealthy.
    const health = await server.app.inject({ method: 'GET', url: '/api/v1/chat/system/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json().status).toBe('unhealthy');
  });
});

describe('PostgreSQL lost while serving', () => {
  let database: TestDatabase;
  let relay: Relay;
  let server: { container: Container; app: App };
  let headers: Record<string, string>;
  /** A token never used before the outage, so that no identity of it is cached. */
  let unusedHeaders: Record<string, string>;
  let threadId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    relay = await startRelay({ host: '127.0.0.1', port: Number(new URL(database.url).port || 5432) });
    const url = new URL(database.url);
    url.port = String(relay.port);
    server = await startServer(url.toString(), `test-${database.name}`);
    // The cut comes after authentication, inside the request, so that it is the accept that meets the outage.
    server.app.addHook('preHandler', async (request) => {
      if (request.headers['x-test-cut-database']) await relay.cut();
    });
    await server.app.ready();
    const tenant = await bootstrapOrganization(server.container.repositories.tenancy, 'Acme Outage', 'admin@outage.test');
    headers = { authorization: `Bearer ${tenant.token}`, 'x-organization-id': tenant.orgId };
    const unused = await server.container.repositories.tenancy.createToken(tenant.userId);
    unusedHeaders = { authorization: `Bearer ${unused.token}`, 'x-organization-id': tenant.orgId };
    threadId = (await server.app.inject({ method: 'POST', url: '/api/v1/chat/threads', payload: { title: 't' }, headers })).json().id;
  });
  afterAll(async () => {
    await server.app.close();
    await server.container.close();
    await relay.close();
    await database.drop();
  });

  it('answers an accept during the outage with 503, writes nothing, and serves again when it is back', async () => {
    const accepts = [
      { url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'during the outage' } },
      { url: '/api/v1/chat/comprehensive', payload: { message: 'during the outage' } },
      { url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: 'during the outage' } },
    ];
    for (const accept of accepts) {
      await relay.restore();
      // Connections in the pool, authentication done: then PostgreSQL goes away.
      expect((await server.app.inject({ method: 'GET', url: `/api/v1/chat/threads/${threadId}`, headers })).statusCode).toBe(200);
      const res = await server.app.inject({ method: 'POST', ...accept, headers: { ...headers, 'x-test-cut-database': '1' } });
      expectUnavailable(res, accept.url);
    }
    // Every route while it stays away.
    const ids = { threadId, batchId: randomUUID(), documentId: randomUUID(), alertId: randomUUID() };
    for (const route of everyRoute(ids)) {
      const res = await server.app.inject({ ...route, headers: unusedHeaders });
      expectUnavailable(res, `${route.method} ${route.url}`);
    }
    await relay.restore();
    const rows = await database.pool.query(`select count(*) as n from messages where content = 'during the outage'`);
    expect(Number(rows.rows[0].n)).toBe(0);
    const threads = await database.pool.query('select count(*) as n from threads');
    expect(Number(threads.rows[0].n)).toBe(1);
    const again = await server.app.inject({ method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'after the outage' }, headers });
    expect(again.statusCode).toBe(202);
  });
});
