import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

/** Without workers: every accepted message stays open, so its thread stays busy. */
describe('double texting, without workers', () => {
  let t: TestApp;
  let acme: Tenant;
  let member: Tenant;

  beforeAll(async () => {
    t = await createTestApp();
    acme = await t.tenant('Acme Multitask');
    member = await t.memberOf(acme, 'member@multitask.test');
  });
  afterAll(async () => {
    await t.close();
  });

  async function thread(tenant: Tenant = acme): Promise<string> {
    return (await t.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'double' } })).json().id;
  }
  function queued(threadId: string, body: Record<string, unknown>, tenant: Tenant = acme) {
    return t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: body });
  }

  it('enqueues by default, and rejects with 409 naming the running batch on request', async () => {
    const threadId = await thread();
    const first = await queued(threadId, { content: 'First message' });
    expect(first.statusCode).toBe(202);
    const batchId = first.json().data.tracking.batchId;
    expect((await queued(threadId, { content: 'Second, enqueued', multitaskStrategy: 'enqueue' })).statusCode).toBe(202);
    const rejected = await queued(threadId, { content: 'Third, rejected', multitaskStrategy: 'reject' });
    expect(rejected.statusCode).toBe(409);
    expect(rejected.json().error.code).toBe('thread_busy');
    expect(rejected.json().error.message).toContain(batchId);
    const blocking = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: 'Blocking', multitaskStrategy: 'reject' } });
    expect(blocking.statusCode).toBe(409);
    const comprehensive = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'Comprehensive', threadId, multitaskStrategy: 'reject' } });
    expect(comprehensive.statusCode).toBe(409);
    expect(comprehensive.json().error.code).toBe('thread_busy');
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages.map((m: { content: string }) => m.content)).toEqual(['First message', 'Second, enqueued']);
    // A thread of its own is idle: reject accepts, and a new comprehensive thread always does.
    expect((await queued(await thread(), { content: 'Alone', multitaskStrategy: 'reject' })).statusCode).toBe(202);
    expect((await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'New thread', multitaskStrategy: 'reject' } })).statusCode).toBe(202);
  });

  it('accepts exactly one of two messages sent at once with reject', async () => {
    for (let round = 0; round < 5; round++) {
      const threadId = await thread();
      const answers = await Promise.all([
        queued(threadId, { content: `Racing A ${round}`, multitaskStrategy: 'reject' }),
        queued(threadId, { content: `Racing B ${round}`, multitaskStrategy: 'reject' }),
      ]);
      expect(answers.map((a) => a.statusCode).sort()).toEqual([202, 409]);
      const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
      expect(messages).toHaveLength(1);
    }
  });

  it('applies the organization default, which an admin sets and a request overrides', async () => {
    const settings = await t.as(acme, { method: 'GET', url: '/api/v1/organization/settings' });
    expect(settings.statusCode).toBe(200);
    expect(settings.json()).toEqual({ multitaskStrategy: 'enqueue' });
    expect((await t.as(member, { method: 'PATCH', url: '/api/v1/organization/settings', payload: { multitaskStrategy: 'reject' } })).statusCode).toBe(403);
    const invalid = await t.as(acme, { method: 'PATCH', url: '/api/v1/organization/settings', payload: { multitaskStrategy: 'sometimes' } });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error.code).toBe('invalid_request');
    const changed = await t.as(acme, { method: 'PATCH', url: '/api/v1/organization/settings', payload: { multitaskStrategy: 'reject' } });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toEqual({ multitaskStrategy: 'reject' });
    expect((await t.as(member, { method: 'GET', url: '/api/v1/organization/settings' })).json()).toEqual({ multitaskStrategy: 'reject' });

    const threadId = await thread(member);
    expect((await queued(threadId, { content: 'First' }, member)).statusCode).toBe(202);
    expect((await queued(threadId, { content: 'Second, by default rejected' }, member)).statusCode).toBe(409);
    expect((await queued(threadId, { content: 'Third, enqueued on request', multitaskStrategy: 'enqueue' }, member)).statusCode).toBe(202);
    // Another organization keeps its own default.
    const other = await t.tenant('Other Multitask');
    const otherThread = await thread(other);
    expect((await queued(otherThread, { content: 'One' }, other)).statusCode).toBe(202);
    expect((await queued(otherThread, { content: 'Two' }, other)).statusCode).toBe(202);
    expect((await t.as(acme, { method: 'PATCH', url: '/api/v1/organization/settings', payload: { multitaskStrategy: 'enqueue' } })).statusCode).toBe(200);
  });

  it('refuses an unknown strategy in a message', async () => {
    const res = await queued(await thread(), { content: 'x', multitaskStrategy: 'sometimes' });
    expect(res.statusCode).toBe(400);
  });
});

/** With workers and a slow fake OpenAI: the earlier run is in its LLM call when interrupted. */
describe('double texting, interrupt', () => {
  let fake: FakeOpenAiServer;
  let t: TestApp;
  let acme: Tenant;

  beforeAll(async () => {
    fake = await startFakeOpenAi();
    t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, OPENAI_MODEL: 'gpt-4o-mini' }, { workers: true });
    acme = await t.tenant('Acme Interrupt');
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });
  afterEach(() => {
    fake.setLatency(0);
    fake.reset();
  });

  it('aborts the running LLM call, stores no reply for it and answers the new message with the whole thread', async () => {
    const threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'interrupt' } })).json().id;
    fake.setLatency(60_000);
    const first = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'Draft a statement about the product launch' } });
    expect(first.statusCode).toBe(202);
    const firstBatch = first.json().data.tracking.batchId;
    await fake.waitFor((f) => f.inFlight === 1, 20_000);
    fake.setLatency(0);

    const second = await t.as(acme, {
      method: 'POST',
      url: `/api/v1/chat/threads/${threadId}/messages/queued`,
      payload: { content: 'Actually, make it about the recall instead', multitaskStrategy: 'interrupt' },
    });
    expect(second.statusCode).toBe(202);
    expect(second.json().data.tracking.interrupted).toEqual([firstBatch]);
    const secondBatch = second.json().data.tracking.batchId;

    // The first call was aborted where it ran.
    await fake.waitFor((f) => f.aborted === 1, 20_000);
    const done = await eventually(async () => {
      const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${secondBatch}/results` })).json();
      return doc.finishedAt ? doc : undefined;
    }, 20_000, 'the second batch');
    expect(done.status).toBe('completed');
    const cancelled = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${firstBatch}/results` })).json();
    expect(cancelled.status).toBe('cancelled');
    expect(await t.container.repositories.runs.assistantMessage(firstBatch)).toBeUndefined();

    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages.map((m: { role: string }) => m.role)).toEqual(['user', 'user', 'assistant']);
    expect(messages[2].batchId).toBe(secondBatch);
    // The new message's prompt carries the interrupted one as context.
    const requests = fake.chatRequests();
    const last = requests[requests.length - 1]!.body as { messages: Array<{ role: string; content: string }> };
    const prompt = JSON.stringify(last.messages);
    expect(prompt).toContain('Draft a statement about the product launch');
    expect(prompt).toContain('make it about the recall instead');
  });
});
