import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';

describe('failed authentications are throttled per client address', () => {
  let t: TestApp;
  let tenant: Tenant;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_FAILURE_RATE_LIMIT_MAX: '5', AUTH_FAILURE_RATE_LIMIT_WINDOW_MS: '60000' });
    tenant = await t.tenant();
  });

  afterAll(async () => {
    await t?.close();
  });

  const from = (remoteAddress: string, headers: Record<string, string>) =>
    t.app.inject({ method: 'GET', url: '/api/v1/chat/threads', remoteAddress, headers });

  it('answers 429 rate_limited with Retry-After to failing requests after the limit, still serves valid tokens, and only for that address', async () => {
    const guesser = '203.0.113.7';
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await from(guesser, { authorization: `Bearer hj_guess_${i}`, 'x-organization-id': tenant.orgId })).statusCode);
    statuses.push((await from(guesser, {})).statusCode);
    expect(statuses).toEqual([401, 401, 401, 401, 401]);

    const blocked = await from(guesser, { authorization: 'Bearer hj_guess_next', 'x-organization-id': tenant.orgId });
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json()).toEqual({ error: { code: 'rate_limited', message: expect.stringContaining('invalid credentials') } });
    const retryAfter = Number(blocked.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // No token at all, and a revoked one, are throttled too.
    expect((await from(guesser, {})).statusCode).toBe(429);
    const revoked = await t.tenant();
    await t.container.repositories.tenancy.revokeToken(revoked.token);
    expect((await from(guesser, revoked.headers)).statusCode).toBe(429);
    // A caller with a valid token behind the same address is not locked out by someone else's guessing.
    const valid = await from(guesser, tenant.headers);
    expect(valid.statusCode).toBe(200);
    expect(valid.headers['retry-after']).toBeUndefined();
    // The dashboard's sign-in checks tokens too: a wrong one is throttled, a right one opens a session.
    const signIn = await t.app.inject({ method: 'POST', url: '/dashboard/session', remoteAddress: guesser, payload: { token: 'hj_guess', orgId: tenant.orgId } });
    expect(signIn.statusCode).toBe(429);
    const rightSignIn = await t.app.inject({ method: 'POST', url: '/dashboard/session', remoteAddress: guesser, payload: { token: tenant.token, orgId: tenant.orgId } });
    expect(rightSignIn.statusCode).toBe(201);
    // Health stays open to the address; other addresses are not affected.
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/chat/system/health', remoteAddress: guesser })).statusCode).toBe(200);
    expect((await from('198.51.100.20', { authorization: 'Bearer hj_other_guess', 'x-organization-id': tenant.orgId })).statusCode).toBe(401);
  });

  it('does not count successful requests', async () => {
    const client = '198.51.100.30';
    for (let i = 0; i < 10; i++) expect((await from(client, tenant.headers)).statusCode).toBe(200);
    expect((await from(client, { authorization: 'Bearer wrong', 'x-organization-id': tenant.orgId })).statusCode).toBe(401);
  });
});
