import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/adapters/postgres/repositories/tenancy.repository.js';
import { createLogger } from '../../src/logger.js';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

/*
 * Every line any logger of the server writes (HTTP, container, workers), at every level, is
 * captured while secrets go through each failing path the server has: failing statements (pg and
 * Drizzle errors, whose `detail` and `params` carry the row), failing stages and providers,
 * refused input, bad tokens, query strings. None of the secrets may appear in a line.
 */
const CARD = '4111 1111 1111 1111';
const KEY = `sk-proj-${randomBytes(24).toString('hex')}`;
const MARKER = `zq${randomBytes(6).toString('hex')}mark`;
const SECRET = `Call ${MARKER} about card ${CARD} and key ${KEY}`;
const BAD_TOKEN = `hj_${MARKER}`;

const lines: string[] = [];
let fake: FakeOpenAiServer;
let t: TestApp;
let acme: Tenant;

beforeAll(async () => {
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  fake = await startFakeOpenAi();
  t = await createTestApp(
    { OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, OPENAI_MODEL: 'gpt-4o-mini', LOG_LEVEL: 'trace' },
    { workers: true, logger: createLogger('trace', capture) },
  );
  acme = await t.tenant('Acme Logs');
});
afterAll(async () => {
  await t.close();
  await fake.close();
});

/** The secrets found in the lines captured since line `from`. */
function leaks(from: number): string[] {
  const text = lines.slice(from).join('\n');
  const secrets = [CARD, CARD.replace(/ /g, ''), KEY, MARKER, acme.token, hashToken(acme.token), hashToken(BAD_TOKEN)];
  return secrets.filter((secret) => text.includes(secret));
}

function logged(from: number, predicate: (entry: Record<string, any>) => boolean): Array<Record<string, any>> {
  return lines.slice(from).map((line) => JSON.parse(line) as Record<string, any>).filter(predicate);
}

async function thread(title = 'plain'): Promise<string> {
  const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title } });
  expect(res.statusCode).toBe(201);
  return res.json().id;
}

describe('log lines', () => {
  it('carry no values of a failing statement (pg detail, Drizzle params)', async () => {
    const from = lines.length;
    const threadId = await thread();
    // Check constraints that refuse the secret: each failure's `detail` is "Failing row contains (…)".
    await t.database.pool.query(`alter table messages add constraint log_test_messages check (position('${MARKER}' in content) = 0) not valid`);
    await t.database.pool.query(`alter table threads add constraint log_test_threads check (position('${MARKER}' in title) = 0) not valid`);
    await t.database.pool.query(`alter table documents add constraint log_test_documents check (position('${MARKER}' in title) = 0) not valid`);
    try {
      const failing = [
        { method: 'POST', url: '/api/v1/chat/threads', payload: { title: SECRET } },
        { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: SECRET } },
        { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: SECRET } },
        { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: SECRET, contacts: [{ name: SECRET }] } },
        { method: 'POST', url: '/api/v1/documents', payload: { title: SECRET, content: `${SECRET}\n\n${SECRET}` } },
      ] as const;
      for (const request of failing) {
        const res = await t.as(acme, request);
        expect(res.statusCode, request.url).toBe(500);
        expect(res.body).not.toContain(MARKER);
      }
    } finally {
      for (const [table, name] of [['messages', 'log_test_messages'], ['threads', 'log_test_threads'], ['documents', 'log_test_documents']]) {
        await t.database.pool.query(`alter table ${table} drop constraint ${name}`);
      }
    }
    const failures = logged(from, (entry) => entry.msg === 'request failed');
    expect(failures.length).toBeGreaterThanOrEqual(5);
    // The errors are there, by type, code and constraint, without their values.
    expect(failures.some((entry) => entry.err.type === 'DrizzleQueryError' && entry.err.cause?.code === '23514')).toBe(true);
    expect(failures.some((entry) => entry.err.code === '23514' && entry.err.constraint === 'log_test_messages')).toBe(true);
    expect(failures.every((entry) => entry.err.detail === undefined && entry.err.params === undefined && entry.err.where === undefined)).toBe(true);
    expect(leaks(from)).toEqual([]);
  });

  it('carry no text of a message whose provider call or stage fails', async () => {
    const from = lines.length;
    // A provider that echoes the request in its error, as some do.
    fake.failNext(400, { error: { message: `Invalid prompt: ${MARKER}`, type: 'invalid_request_error' }, times: 2 });
    const threadId = await thread();
    const blocking = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: `Draft a note about ${MARKER}` } });
    expect(blocking.statusCode).toBe(200);
    expect(blocking.json().status).toBe('failed');
    const queued = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: `Summarise ${MARKER} for the board` } });
    expect(queued.statusCode).toBe(202);
    const batchId = queued.json().data.tracking.batchId;
    const doc = await eventually(async () => {
      const res = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
      return res.finishedAt ? res : undefined;
    }, 20_000, 'the failing batch');
    expect(doc.status).toBe('failed');

    // A local stage whose statement fails (the retrieval index is gone), retried, then given up.
    await t.database.pool.query('alter table document_chunks rename to document_chunks_away');
    try {
      const res = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: `Find ${MARKER} in our playbook` } });
      const ragFailed = await eventually(async () => {
        const batch = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${res.json().data.tracking.batchId}/results` })).json();
        return batch.finishedAt ? batch : undefined;
      }, 20_000, 'the batch with a failed rag stage');
      expect(ragFailed.errors?.map((e: { stage: string }) => e.stage)).toContain('rag');
    } finally {
      await t.database.pool.query('alter table document_chunks_away rename to document_chunks');
    }
    expect(logged(from, (entry) => entry.level >= 40 && entry.stage !== undefined).length).toBeGreaterThan(0);
    expect(leaks(from)).toEqual([]);
  });

  it('carry no refused input, query string or token', async () => {
    const from = lines.length;
    const threadId = await thread();
    const refused = [
      { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: `${SECRET}\u0000` } },
      { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: SECRET, extra: SECRET } },
      { method: 'POST', url: '/api/v1/chat/threads', payload: { title: `${SECRET}\ud800` } },
      { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: SECRET, contacts: [{ name: `${SECRET}\u0000` }] } },
      { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: ['x.intent'], reason: `${SECRET}\u0000` } },
      { method: 'POST', url: '/api/v1/documents', payload: { title: 'x', content: `${SECRET}\ud800` } },
      { method: 'POST', url: '/api/v1/chat/threads', payload: `{"title": "${SECRET}`, headers: { 'content-type': 'application/json' } },
      { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: `${SECRET} ${'x'.repeat(40_000)}` } },
      { method: 'GET', url: `/api/v1/chat/threads?cursor=${MARKER}` },
      { method: 'GET', url: `/api/v1/documents?cursor=${Buffer.from(JSON.stringify({ t: MARKER, id: MARKER })).toString('base64url')}` },
      { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages?cursor=${KEY}` },
      { method: 'GET', url: `/api/v1/nowhere?q=${MARKER}` },
    ] as const;
    for (const request of refused) {
      const res = await t.as(acme, request as Parameters<TestApp['as']>[1]);
      expect(res.statusCode, request.url).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, request.url).toBeLessThan(500);
    }
    const unauthorized = await t.app.inject({ method: 'GET', url: '/api/v1/chat/threads', headers: { authorization: `Bearer ${BAD_TOKEN}`, 'x-organization-id': acme.orgId } });
    expect(unauthorized.statusCode).toBe(401);
    // The requests were logged, by method and path.
    expect(logged(from, (entry) => entry.msg === 'incoming request' && entry.req?.url === '/api/v1/chat/threads').length).toBeGreaterThan(0);
    expect(leaks(from)).toEqual([]);
  });

  it('carry the route pattern, or a path without its ids, never a secret put in the path; answers do not echo it either', async () => {
    const from = lines.length;
    const card = CARD.replace(/ /g, '');
    const unmatched = await t.app.inject({ method: 'GET', url: `/api/v1/${MARKER}-${KEY}?q=${MARKER}` });
    expect(unmatched.statusCode).toBe(404);
    expect(unmatched.json()).toEqual({ error: { code: 'route_not_found', message: expect.any(String) } });
    const document = await t.as(acme, { method: 'GET', url: `/api/v1/documents/${card}` });
    expect(document.statusCode).toBeGreaterThanOrEqual(400);
    expect(document.statusCode).toBeLessThan(500);
    // Fastify's own routing errors: a path that is not valid percent-encoding, an over-long parameter.
    const badEncoding = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${KEY}%ED%A0%80` });
    expect(badEncoding.statusCode).toBe(400);
    expect(badEncoding.json()).toEqual({ error: { code: 'invalid_request', message: expect.any(String) } });
    const tooLong = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${KEY}${card.repeat(8)}` });
    expect(tooLong.statusCode).toBe(414);
    expect(tooLong.json()).toEqual({ error: { code: 'uri_too_long', message: expect.any(String) } });
    for (const res of [unmatched, document, badEncoding, tooLong]) {
      for (const secret of [KEY, card, MARKER]) expect(res.body).not.toContain(secret);
    }

    const urls = logged(from, (entry) => entry.msg === 'incoming request').map((entry) => entry.req?.url);
    expect(urls).toContain('/api/v1/:param');
    expect(urls).toContain('/api/v1/documents/:documentId');
    expect(urls).toContain('/api/v1/chat/threads/:param');
    expect(leaks(from)).toEqual([]);
  });
});
