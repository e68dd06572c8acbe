import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { killAll, runCli, serverEnv, startServerProcess } from '../support/processes.js';

let t: TestApp;
let acme: Tenant;
let globex: Tenant;
let member: Tenant;


beforeAll(async () => {
  t = await createTestApp({ ALERTS_INTERVAL_MS: '0' });
  acme = await t.tenant('Acme Operators', 'admin@acme-operators.test');
  globex = await t.tenant('Globex Operators', 'admin@globex-operators.test');
  member = await t.memberOf(acme, 'member@acme-operators.test');
});
afterAll(async () => {
  await killAll();
  await t.close();
});

describe('the operator flag', () => {
  it('takes effect at once in this process when granted or revoked (the identity cache is dropped)', async () => {
    const tenancy = t.container.repositories.tenancy;
    const queueStatus = () => t.as(acme, { method: 'GET', url: '/api/v1/chat/system/queue-status' });
    const me = async () => (await t.as(acme, { method: 'GET', url: '/api/v1/me' })).json();
    expect(await me()).toEqual({ userId: acme.userId, orgId: acme.orgId, role: 'admin', operator: false });
    const refused = await queueStatus();
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: { code: 'operator_required', message: 'This needs a system operator' } });

    expect(await tenancy.setOperator('ADMIN@acme-operators.test', true)).toEqual({ userId: acme.userId, email: 'admin@acme-operators.test', operator: true });
    expect((await queueStatus()).statusCode).toBe(200);
    expect((await me()).operator).toBe(true);
    // Tenant data stays scoped: an operator is still a stranger to another organization's threads.
    const thread = (await t.as(globex, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'private' } })).json();
    expect((await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${thread.id}` })).statusCode).toBe(404);

    await tenancy.setOperator('admin@acme-operators.test', false);
    expect((await queueStatus()).statusCode).toBe(403);
    expect(await tenancy.setOperator('nobody@acme-operators.test', true)).toBeUndefined();
  });
});

describe('TRUST_PROXY', () => {
  it('is off unless set, and takes true, a hop count or addresses', () => {
    expect(loadConfig({}).http.trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'false' }).http.trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'true' }).http.trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '2' }).http.trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).http.trustProxy).toBe('10.0.0.0/8,127.0.0.1');
    for (const value of ['yes please', 'proxy.example.com']) expect(() => loadConfig({ TRUST_PROXY: value }), value).toThrow(ConfigError);
  });
});

describe('documents', () => {
  it('lets members add documents and delete their own; deleting someone else\'s needs an admin', async () => {
    const add = async (tenant: Tenant, title: string) => {
      const res = await t.as(tenant, { method: 'POST', url: '/api/v1/documents', payload: { title, content: `${title}: statements are approved by the head of communications.` } });
      expect(res.statusCode).toBe(201);
      return res.json().id as string;
    };
    const remove = (tenant: Tenant, id: string) => t.as(tenant, { method: 'DELETE', url: `/api/v1/documents/${id}` });
    const exists = async (id: string) => (await t.as(acme, { method: 'GET', url: `/api/v1/documents/${id}` })).statusCode === 200;

    const own = await add(member, 'Member note');
    expect((await remove(member, own)).statusCode).toBe(204);
    expect(await exists(own)).toBe(false);

    const admins = await add(acme, 'Admin note');
    const refused = await remove(member, admins);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('forbidden');
    expect(await exists(admins)).toBe(true);
    expect((await remove(globex, admins)).statusCode).toBe(404);
    expect(await exists(admins)).toBe(true);

    const members = await add(member, 'Another member note');
    expect((await remove(acme, members)).statusCode).toBe(204);
    expect((await remove(acme, admins)).statusCode).toBe(204);
    expect((await remove(member, admins)).statusCode).toBe(404);
  });
});

describe('the honeyjar command', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    env = serverEnv({ databaseUrl: database.url, prefix: `test-${database.name}` });
  });
  afterAll(async () => {
    await killAll();
    await database?.drop();
  });

  const json = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop() ?? '');
  const isOperator = async (email: string) =>
    (await database.pool.query('select is_operator from users where lower(email) = lower($1)', [email])).rows[0]?.is_operator as boolean | undefined;

  it('makes the first start\'s admin a system operator', async () => {
    const server = await startServerProcess('api', { ...env, BOOTSTRAP_ADMIN_EMAIL: 'first@first-start.test' }, { name: 'first start' });
    try {
      expect(await isOperator('first@first-start.test')).toBe(true);
    } finally {
      await server.kill();
    }
  }, 60_000);

  it('bootstrap --operator, operator grant and revoke, one JSON line each; an unknown email is an error', async () => {
    const boot = await runCli(['bootstrap', '--org', 'CLI Operations', '--email', 'ops@cli.test', '--operator'], env);
    expect(boot.code).toBe(0);
    const booted = json(boot.stdout);
    expect(booted).toMatchObject({ orgId: expect.any(String), userId: expect.any(String), token: expect.stringMatching(/^hj_/), operator: true });
    expect(await isOperator('ops@cli.test')).toBe(true);

    const plain = await runCli(['bootstrap', '--org', 'CLI Tenant', '--email', 'admin@cli.test'], env);
    expect(json(plain.stdout)).toMatchObject({ operator: false });

    const revoke = await runCli(['operator', 'revoke', '--email', 'ops@cli.test'], env);
    expect(revoke.code).toBe(0);
    expect(json(revoke.stdout)).toEqual({ userId: booted.userId, email: 'ops@cli.test', operator: false });
    expect(await isOperator('ops@cli.test')).toBe(false);
    const grant = await runCli(['operator', 'grant', '--email', 'ADMIN@cli.test'], env);
    expect(json(grant.stdout)).toMatchObject({ email: 'admin@cli.test', operator: true });
    expect(await isOperator('admin@cli.test')).toBe(true);

    const unknown = await runCli(['operator', 'grant', '--email', 'nobody@cli.test'], env);
    expect(unknown.code).toBe(1);
    expect(json(unknown.stdout)).toEqual({ error: { code: 'user_not_found', message: 'No user with email nobody@cli.test' } });
    expect(unknown.stderr).toContain('no user with email nobody@cli.test');
    expect((await runCli(['operator', 'promote', '--email', 'ops@cli.test'], env)).code).toBe(2);
    expect((await runCli(['operator', 'grant'], env)).code).toBe(2);
  }, 90_000);
});
