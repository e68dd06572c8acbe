import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';

let t: TestApp;
let acme: Tenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await t.tenant('Acme Chat');
});
afterAll(() => t.close());

async function newThread(title?: string): Promise<string> {
  const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: title === undefined ? {} : { title } });
  expect(res.statusCode).toBe(201);
  return res.json().id;
}

describe('threads', () => {
  it('creates, gets and lists threads with a cursor', async () => {
    const created = await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'Q3 launch' } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toEqual({ id: expect.any(String), title: 'Q3 launch', createdAt: expect.any(String) });
    const got = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${created.json().id}` });
    expect(got.json()).toEqual(created.json());

    for (let i = 0; i < 4; i++) await newThread(`page ${i}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads?limit=2${cursor ? `&cursor=${cursor}` : ''}` });
      expect(res.statusCode).toBe(200);
      const page = res.json() as { threads: Array<{ id: string }>; nextCursor: string | null };
      expect(page.threads.length).toBeLessThanOrEqual(2);
      seen.push(...page.threads.map((thread) => thread.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(5);
  });

  it('gives a default title', async () => {
    const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: {} });
    expect(res.json().title).toBe('New conversation');
  });

  it('rejects bad input with 4xx and the error shape', async () => {
    const cases: Array<[object, number, string]> = [
      [{ method: 'POST', url: '/api/v1/chat/threads', payload: { title: 42 } }, 400, 'invalid_request'],
      [{ method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'x'.repeat(201) } }, 400, 'invalid_request'],
      [{ method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'ok', orgId: 'x' } }, 400, 'invalid_request'],
      [{ method: 'GET', url: '/api/v1/chat/threads?limit=0' }, 400, 'invalid_request'],
      [{ method: 'GET', url: '/api/v1/chat/threads?limit=201' }, 400, 'invalid_request'],
      [{ method: 'GET', url: '/api/v1/chat/threads?limit=abc' }, 400, 'invalid_request'],
      [{ method: 'GET', url: '/api/v1/chat/threads?cursor=garbage' }, 400, 'invalid_cursor'],
      [
        { method: 'POST', url: '/api/v1/chat/threads', payload: '{"title":', headers: { 'content-type': 'application/json' } },
        400,
        'invalid_json',
      ],
      [{ method: 'POST', url: '/api/v1/chat/threads', payload: 'title=x', headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type'],
    ];
    for (const [options, status, code] of cases) {
      const res = await t.as(acme, options as Parameters<TestApp['as']>[1]);
      expect(res.statusCode, JSON.stringify(options)).toBe(status);
      expect(res.json().error.code).toBe(code);
      expect(res.body).not.toMatch(/\bat .+\.(ts|js):\d+/);
    }
  });
});

describe('the blocking endpoint', () => {
  it('runs every stage, stores the reply and answers with the batch document', async () => {
    await t.as(acme, {
      method: 'POST',
      url: '/api/v1/documents',
      payload: { title: 'Crisis playbook', content: 'During a crisis the head of communications approves every public statement before release.' },
    });
    const threadId = await newThread('crisis');
    const res = await t.as(acme, {
      method: 'POST',
      url: `/api/v1/chat/threads/${threadId}/messages`,
      payload: { content: 'According to our crisis playbook, who approves public statements?' },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      batchId: expect.any(String),
      status: 'completed',
      completedJobs: 5,
      totalJobs: 5,
      messageId: expect.any(String),
      assistantMessage: { id: expect.any(String), content: expect.any(String) },
      results: {
        intent: { category: expect.any(String), confidence: expect.any(Number) },
        security: { level: 'public', safe: true },
        rag: { documents: [expect.objectContaining({ title: 'Crisis playbook' })] },
        rocketreach: { status: 'skipped' },
        openai: { provider: 'offline', choices: [{ message: { role: 'assistant', content: body.assistantMessage.content } }] },
      },
    });
    expect(body.errors).toBeUndefined();
    expect(body.assistantMessage.content).toContain('Crisis playbook');

    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
    expect(messages[0]).toMatchObject({ id: body.messageId, batchId: body.batchId });
    expect(messages[1]).toMatchObject({ id: body.assistantMessage.id, batchId: body.batchId, content: body.assistantMessage.content });

    const batch = await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${body.batchId}/results` });
    expect(batch.statusCode).toBe(200);
    const { messageId: _m, assistantMessage: _a, ...document } = body;
    expect(batch.json()).toEqual(document);
  });

  it('answers a message with restricted content locally, without echoing it', async () => {
    const threadId = await newThread();
    const card = ['4111', '1111', '1111', '1111'].join(' ');
    const res = await t.as(acme, {
      method: 'POST',
      url: `/api/v1/chat/threads/${threadId}/messages`,
      payload: { content: `Please draft a thank-you note to the customer whose card is ${card}` },
    });
    const body = res.json();
    expect(body.results.security).toMatchObject({ level: 'restricted', safe: false });
    expect(body.results.security.redactedContent).not.toContain(card);
    expect(JSON.stringify(body.results.openai)).not.toContain(card);
  });

  it('validates content: missing, blank, wrong type, over 32 KiB', async () => {
    const threadId = await newThread();
    const url = `/api/v1/chat/threads/${threadId}/messages`;
    const cases: Array<[unknown, number, string]> = [
      [{}, 400, 'invalid_request'],
      [{ content: '   ' }, 400, 'invalid_request'],
      [{ content: 12 }, 400, 'invalid_request'],
      [{ content: 'hi', role: 'assistant' }, 400, 'invalid_request'],
      [{ content: 'é'.repeat(16 * 1024 + 1) }, 413, 'content_too_large'],
      [{ content: 'x'.repeat(40 * 1024) }, 413, 'content_too_large'],
      [{ content: 'x'.repeat(100 * 1024) }, 413, 'payload_too_large'],
    ];
    for (const [payload, status, code] of cases) {
      const res = await t.as(acme, { method: 'POST', url, payload: payload as object });
      expect(res.statusCode, JSON.stringify(payload).slice(0, 60)).toBe(status);
      expect(res.json().error.code).toBe(code);
    }
    const messages = (await t.as(acme, { method: 'GET', url })).json().messages;
    expect(messages).toEqual([]);
  });
});
