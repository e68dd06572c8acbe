import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';

let t: TestApp;
let acme: Tenant;
let globex: Tenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await t.tenant('Acme');
  globex = await t.tenant('Globex');
});
afterAll(() => t.close());

describe('authentication', () => {
  it('answers 401 without a bearer token, with a malformed one and with an unknown one', async () => {
    for (const authorization of [undefined, 'Basic abc', 'Bearer', 'Bearer hj_not-a-real-token']) {
      const res = await t.app.inject({
        method: 'GET',
        url: '/api/v1/chat/threads',
        headers: { 'x-organization-id': acme.orgId, ...(authorization ? { authorization } : {}) },
      });
      expect(res.statusCode, String(authorization)).toBe(401);
      expect(res.json().error.code).toBe('unauthorized');
    }
  });

  it('answers 403 without x-organization-id, with a malformed one, and for an organization the user is not in', async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ authorization: acme.headers.authorization! }, 'organization_required'],
      [{ authorization: acme.headers.authorization!, 'x-organization-id': 'not-a-uuid' }, 'forbidden'],
      [{ authorization: acme.headers.authorization!, 'x-organization-id': globex.orgId }, 'forbidden'],
    ];
    for (const [headers, code] of cases) {
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/chat/threads', headers });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe(code);
    }
  });

  it('stores only a hash of each token', async () => {
    const rows = await t.database.pool.query('select token_hash, prefix from api_tokens');
    for (const row of rows.rows) {
      expect(row.token_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.token_hash).not.toContain(acme.token);
      expect(acme.token.startsWith(row.prefix) || globex.token.startsWith(row.prefix)).toBe(true);
    }
  });

  it('answers 401 once a token is revoked', async () => {
    const extra = await t.container.repositories.tenancy.createToken(acme.userId, 'to revoke');
    const headers = { authorization: `Bearer ${extra.token}`, 'x-organization-id': acme.orgId };
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/chat/threads', headers })).statusCode).toBe(200);
    expect(await t.container.repositories.tenancy.revokeToken(extra.token)).toBe(true);
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/chat/threads', headers });
    expect(res.statusCode).toBe(401);
  });

  it('serves health without credentials and reveals nothing secret', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/chat/system/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'healthy', checks: { database: { status: 'healthy' } } });
    expect(res.body).not.toMatch(/postgres:\/\//);
  });

  it('answers unknown routes with the error shape', async () => {
    const res = await t.as(acme, { method: 'GET', url: '/api/v1/chat/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: 'route_not_found', message: expect.any(String) } });
  });
});

describe('tenancy: another organization sees 404 for everything', () => {
  it('threads, messages, the blocking endpoint, batches and documents', async () => {
    const thread = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'Launch' } })).json();
    const sent = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${thread.id}/messages`, payload: { content: 'hello there' } });
    expect(sent.statusCode).toBe(200);
    const batchId = sent.json().batchId as string;
    const doc = (
      await t.as(acme, { method: 'POST', url: '/api/v1/documents', payload: { title: 'Brand guide', content: 'Our logo is teal.' } })
    ).json();

    const foreign: Array<[string, string, unknown?]> = [
      ['GET', `/api/v1/chat/threads/${thread.id}`],
      ['GET', `/api/v1/chat/threads/${thread.id}/messages`],
      ['POST', `/api/v1/chat/threads/${thread.id}/messages`, { content: 'let me in' }],
      ['GET', `/api/v1/chat/batch/${batchId}/results`],
      ['GET', `/api/v1/documents/${doc.id}`],
      ['DELETE', `/api/v1/documents/${doc.id}`],
    ];
    for (const [method, url, payload] of foreign) {
      const res = await t.as(globex, { method: method as 'GET', url, ...(payload ? { payload: payload as object } : {}) });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().error.code).toBe('not_found');
    }
    const lists = await Promise.all([
      t.as(globex, { method: 'GET', url: '/api/v1/chat/threads' }),
      t.as(globex, { method: 'GET', url: '/api/v1/documents' }),
    ]);
    expect(lists[0].json().threads).toEqual([]);
    expect(lists[1].json().documents).toEqual([]);
    // Nothing was created or removed by the attempts.
    const messages = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${thread.id}/messages` });
    expect(messages.json().messages).toHaveLength(2);
    expect((await t.as(acme, { method: 'GET', url: `/api/v1/documents/${doc.id}` })).statusCode).toBe(200);
  });

  it('answers 404 for ids that are not even well-formed', async () => {
    for (const url of ['/api/v1/chat/threads/123', '/api/v1/chat/batch/xyz/results', '/api/v1/documents/..%2f']) {
      const res = await t.as(acme, { method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
    }
  });
});
