import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';

const COUNT = 5;
const BYTES = 4096;

describe('per-organization document quota', () => {
  let t: TestApp;
  let tenant: Tenant;
  let other: Tenant;

  beforeAll(async () => {
    t = await createTestApp({ DOCUMENT_QUOTA_COUNT: String(COUNT), DOCUMENT_QUOTA_BYTES: String(BYTES) });
    tenant = await t.tenant();
    other = await t.tenant();
  });

  afterAll(async () => {
    await t?.close();
  });

  const add = (who: Tenant, title: string, content: string) => t.as(who, { method: 'POST', url: '/api/v1/documents', payload: { title, content } });

  async function stored(who: Tenant): Promise<{ count: number; bytes: number }> {
    const { rows } = await t.container.database.pool.query(
      'select count(*)::int as count, coalesce(sum(octet_length(content)), 0)::int as bytes from documents where org_id = $1',
      [who.orgId],
    );
    return rows[0];
  }

  it('refuses a document past the byte quota with 409 document_quota_exceeded', async () => {
    expect((await add(tenant, 'big', 'x'.repeat(BYTES - 100))).statusCode).toBe(201);
    const refused = await add(tenant, 'too much', 'y'.repeat(200));
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toEqual({ error: { code: 'document_quota_exceeded', message: expect.stringContaining(`${BYTES} bytes`) } });
    expect(await stored(tenant)).toEqual({ count: 1, bytes: BYTES - 100 });
    // Another organization has its own quota.
    expect((await add(other, 'theirs', 'z'.repeat(200))).statusCode).toBe(201);
    // Deleting frees the room again.
    const list = (await t.as(tenant, { method: 'GET', url: '/api/v1/documents' })).json();
    const id = list.documents[0].id;
    expect((await t.as(tenant, { method: 'DELETE', url: `/api/v1/documents/${id}` })).statusCode).toBe(204);
    expect((await add(tenant, 'fits now', 'y'.repeat(200))).statusCode).toBe(201);
  });

  it('does not overshoot the count quota under concurrent creates', async () => {
    const before = await stored(other);
    const attempts = 12;
    const results = await Promise.all(Array.from({ length: attempts }, (_, i) => add(other, `doc ${i}`, `content number ${i}`)));
    const created = results.filter((r) => r.statusCode === 201).length;
    const refused = results.filter((r) => r.statusCode === 409);
    expect(created).toBe(COUNT - before.count);
    expect(refused).toHaveLength(attempts - created);
    for (const r of refused) expect(r.json().error.code).toBe('document_quota_exceeded');
    expect((await stored(other)).count).toBe(COUNT);
  });
});
