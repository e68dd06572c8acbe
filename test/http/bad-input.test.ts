import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';

let t: TestApp;
let acme: Tenant;
let threadId: string;

beforeAll(async () => {
  t = await createTestApp();
  acme = await t.tenant('Acme Input');
  threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'input' } })).json().id;
});
afterAll(() => t.close());

const NUL = 'a\u0000b';
const LONE = 'a\ud800b';

type Request = Parameters<TestApp['as']>[1];

/** Every text field of every route that takes one, with the name the error must give. */
function textFields(bad: string): Array<[Request, string]> {
  return [
    [{ method: 'POST', url: '/api/v1/chat/threads', payload: { title: bad } }, 'body.title'],
    [{ method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: bad } }, 'body.content'],
    [{ method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: bad } }, 'body.content'],
    [{ method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: bad } }, 'body.message'],
    [{ method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'ok', threadId: bad } }, 'body.threadId'],
    [{ method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'ok', contacts: [{ name: bad }] } }, 'body.contacts.0.name'],
    [{ method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'ok', contacts: [{ name: 'Ann', employer: bad }] } }, 'body.contacts.0.employer'],
    [{ method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'ok', contacts: [{ name: 'Ann', title: bad }] } }, 'body.contacts.0.title'],
    [{ method: 'POST', url: '/api/v1/chat/jobs/status', payload: { jobIds: [bad] } }, 'body.jobIds.0'],
    [{ method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: ['x.intent'], reason: bad } }, 'body.reason'],
    [{ method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [bad] } }, 'body.jobIds.0'],
    [{ method: 'POST', url: '/api/v1/documents', payload: { title: bad, content: 'text' } }, 'body.title'],
    [{ method: 'POST', url: '/api/v1/documents', payload: { title: 'doc', content: `para one\n\n${bad}` } }, 'body.content'],
    [{ method: 'POST', url: '/dashboard/session', payload: { token: bad, orgId: acme.orgId } }, 'body.token'],
  ];
}

describe('text fields', () => {
  it.each([
    ['a NUL byte', NUL, 'contains a NUL byte'],
    ['a lone UTF-16 surrogate', LONE, 'contains a lone UTF-16 surrogate'],
    ['a lone low surrogate', 'x\udc00', 'contains a lone UTF-16 surrogate'],
  ])('refuse %s with 400 invalid_request naming the field, on every route', async (_what, bad, reason) => {
    for (const [request, field] of textFields(bad)) {
      const res = await t.as(acme, request);
      expect(res.statusCode, `${String(request.url)} ${field}`).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'invalid_request', message: `${field} ${reason}` } });
    }
  });

  it('refuse them in the query string, path parameters and object keys', async () => {
    const cases: Array<[Request, string]> = [
      [{ method: 'GET', url: '/api/v1/chat/threads?cursor=a%00b' }, 'querystring.cursor contains a NUL byte'],
      [{ method: 'GET', url: '/api/v1/documents?cursor=%00' }, 'querystring.cursor contains a NUL byte'],
      [{ method: 'GET', url: '/api/v1/chat/threads/a%00b' }, 'params.threadId contains a NUL byte'],
      [{ method: 'POST', url: '/api/v1/chat/comprehensive', payload: '{"message":"ok","contacts":[{"\\u0000":"x"}]}', headers: { 'content-type': 'application/json' } }, 'body.contacts.0 has a key that contains a NUL byte'],
    ];
    for (const [request, message] of cases) {
      const res = await t.as(acme, request);
      expect(res.statusCode, String(request.url)).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'invalid_request', message } });
    }
  });

  it('accept paired surrogates (emoji and other astral characters)', async () => {
    const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'Launch 🎉 𝔘𝔫𝔦𝔠𝔬𝔡𝔢' } });
    expect(res.statusCode).toBe(201);
    expect(res.json().title).toBe('Launch 🎉 𝔘𝔫𝔦𝔠𝔬𝔡𝔢');
    const titled = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: `${'x'.repeat(79)}🎉 and more` } });
    expect(titled.statusCode).toBe(202);
    const thread = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${titled.json().data.tracking.threadId}` });
    // The title is cut at 80 characters without splitting the emoji's surrogate pair.
    expect(thread.json().title).toBe(`${'x'.repeat(79)}🎉`);
  });
});

const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('list cursors', () => {
  it('that are well-formed but out of range answer 400 invalid_cursor, never 500', async () => {
    const id = randomUUID();
    const forged = [
      cursor({ t: '+275760-09-13T00:00:00.000Z', id }),
      cursor({ t: '+010000-01-01T00:00:00.000Z', id }),
      cursor({ t: '-000001-01-01T00:00:00.000Z', id }),
      cursor({ t: '0000-01-01T00:00:00.000Z', id }),
      cursor({ t: '2024-02-31T00:00:00.000Z', id }),
      cursor({ t: '2024-01-01', id }),
      cursor({ t: '2024-01-01T00:00:00.000Z', id: 'not-a-uuid' }),
      cursor({ t: '2024-01-01T00:00:00.000Z', id: `${id}x` }),
      cursor({ t: 1_700_000_000, id }),
      cursor({ t: '2024-01-01T00:00:00.000Z' }),
      cursor([1, 2]),
      cursor('text'),
      'not base64 at all!',
    ];
    for (const url of ['/api/v1/chat/threads', '/api/v1/documents']) {
      for (const value of forged) {
        const res = await t.as(acme, { method: 'GET', url: `${url}?cursor=${encodeURIComponent(value)}` });
        expect(res.statusCode, `${url} ${Buffer.from(value, 'base64url').toString()}`).toBe(400);
        expect(res.json().error.code).toBe('invalid_cursor');
      }
    }
    for (const value of [cursor({ seq: 2 ** 53 }), cursor({ seq: 1.5 }), cursor({ seq: '1' }), cursor({ seq: null })]) {
      const res = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages?cursor=${value}` });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('invalid_cursor');
    }
  });

  it('that the server wrote still page through every item', async () => {
    for (let i = 0; i < 3; i++) await t.as(acme, { method: 'POST', url: '/api/v1/documents', payload: { title: `doc ${i}`, content: `content ${i}` } });
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const res = await t.as(acme, { method: 'GET', url: `/api/v1/documents?limit=1${next ? `&cursor=${next}` : ''}` });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().documents.map((d: { id: string }) => d.id));
      next = res.json().nextCursor;
    } while (next);
    expect(seen).toHaveLength(3);
    // An in-range cursor from the far past or future is simply a page (empty or full).
    const far = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads?cursor=${cursor({ t: '9999-12-31T23:59:59.999Z', id: randomUUID() })}` });
    expect(far.statusCode).toBe(200);
    const early = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads?cursor=${cursor({ t: '0001-01-01T00:00:00.000Z', id: randomUUID() })}` });
    expect(early.json().threads).toEqual([]);
  });
});

describe('a failing request', () => {
  it('creates nothing: a /comprehensive whose accept fails leaves no thread behind', async () => {
    const count = async () => Number((await t.database.pool.query('select count(*) as n from threads where org_id = $1', [acme.orgId])).rows[0].n);
    const before = await count();
    await t.database.pool.query('alter table messages rename to messages_away');
    try {
      const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'Draft a statement about the recall' } });
      expect(res.statusCode).toBe(500);
      expect(res.json().error.code).toBe('internal_error');
    } finally {
      await t.database.pool.query('alter table messages_away rename to messages');
    }
    expect(await count()).toBe(before);
    const ok = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'Draft a statement about the recall' } });
    expect(ok.statusCode).toBe(202);
    expect(await count()).toBe(before + 1);
  });
});
