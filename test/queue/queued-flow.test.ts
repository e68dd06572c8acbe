import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeChatBody, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

let fake: FakeOpenAiServer;
let t: TestApp;
let acme: Tenant;
let globex: Tenant;

beforeAll(async () => {
  fake = await startFakeOpenAi();
  t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, OPENAI_MODEL: 'gpt-4o-mini' }, { workers: true });
  acme = await t.tenant('Acme Queue');
  globex = await t.tenant('Globex Queue');
});
afterAll(async () => {
  await t.close();
  await fake.close();
});
afterEach(() => {
  fake.setLatency(0);
  fake.reset();
});

async function thread(tenant: Tenant = acme): Promise<string> {
  return (await t.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'q' } })).json().id;
}

async function sendQueued(threadId: string, content: string, headers: Record<string, string> = {}, tenant: Tenant = acme) {
  return t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content }, headers });
}

function results(batchId: string, tenant: Tenant = acme) {
  return t.as(tenant, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` }).then((res) => res.json());
}

function finished(batchId: string) {
  return eventually(async () => {
    const doc = await results(batchId);
    return doc.finishedAt ? doc : undefined;
  }, 20_000, `batch ${batchId} to finish`);
}

describe('the queued endpoint', () => {
  it('acknowledges with 202 and the seed shape, then completes through the workers', async () => {
    const threadId = await thread();
    const res = await sendQueued(threadId, 'Draft a short press release about our new analytics product');
    expect(res.statusCode).toBe(202);
    const body = res.json();
    expect(body).toMatchObject({
      status: 'accepted',
      message: 'Processing started',
      data: {
        immediate: { messageId: expect.any(String), status: 'processing', timestamp: expect.any(String) },
        tracking: { batchId: expect.any(String), estimatedCompletion: expect.any(String) },
      },
    });
    expect(body.degraded).toBeUndefined();
    const batchId: string = body.data.tracking.batchId;
    for (const [stage, queue] of Object.entries({
      intent: 'intent-classification',
      security: 'security-classification',
      rag: 'rag-processing',
      rocketreach: 'rocketreach-api',
      openai: 'openai-processing',
    })) {
      expect(body.data.jobs[stage]).toEqual({ id: `${batchId}.${stage}`, queue });
    }

    const doc = await finished(batchId);
    expect(doc).toMatchObject({ status: 'completed', completedJobs: 5, totalJobs: 5 });
    expect(doc.results.openai).toMatchObject({ provider: 'openai', model: 'gpt-4o-mini' });
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages).toHaveLength(2);
    expect(messages[1]).toMatchObject({ role: 'assistant', batchId, content: doc.results.openai.choices[0].message.content });
    // Job data carries ids only, never the message text.
    const jobs = await t.container.producer.queues.intent.getJobs(['completed', 'waiting', 'active']);
    for (const job of jobs) expect(Object.keys(job.data).sort()).toEqual(expect.arrayContaining(['orgId', 'runId']));
    expect(JSON.stringify(jobs.map((j) => j.data))).not.toContain('press release');
  });

  it('reports job status and queue stats, and hides other organizations', async () => {
    const threadId = await thread();
    const batchId = (await sendQueued(threadId, 'hello there')).json().data.tracking.batchId;
    await finished(batchId);
    const status = await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/status', payload: { jobIds: [`${batchId}.intent`, `${batchId}.openai`, 'missing'] } });
    expect(status.statusCode).toBe(200);
    expect(status.json().jobs[0]).toMatchObject({ jobId: `${batchId}.intent`, queue: 'intent-classification', status: 'completed', attempts: 1, maxAttempts: 3 });
    expect(status.json().jobs[1]).toMatchObject({ status: 'completed', result: { provider: 'openai' } });
    expect(status.json().jobs[2]).toEqual({ jobId: 'missing', status: 'not_found' });
    expect(status.json().summary).toMatchObject({ total: 3, completed: 2, not_found: 1 });

    const foreign = await t.as(globex, { method: 'POST', url: '/api/v1/chat/jobs/status', payload: { jobIds: [`${batchId}.intent`] } });
    expect(foreign.json().jobs).toEqual([{ jobId: `${batchId}.intent`, status: 'not_found' }]);
    const foreignCancel = await t.as(globex, { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [`${batchId}.openai`] } });
    expect(foreignCancel.json().results).toEqual([{ jobId: `${batchId}.openai`, cancelled: false, previousState: 'not_found' }]);
    expect((await results(batchId, globex)).error.code).toBe('not_found');
    expect((await sendQueued(threadId, 'hi', {}, globex)).statusCode).toBe(404);

    // Each organization sees its own runs and steps; only an operator sees the queues' counts.
    const own = await t.as(acme, { method: 'GET', url: '/api/v1/chat/jobs/queue-stats' });
    expect(own.statusCode).toBe(200);
    expect(own.json().scope).toBe('organization');
    expect(own.json().queues).toBeUndefined();
    expect(own.json().organization).toMatchObject({ orgId: acme.orgId, timeRange: '1h', stages: { intent: { completed: expect.any(Number) } } });
    expect(own.json().organization.runs.total).toBeGreaterThanOrEqual(1);
    expect(own.json().organization.stages.intent.completed).toBeGreaterThanOrEqual(1);
    const foreignStats = (await t.as(globex, { method: 'GET', url: '/api/v1/chat/jobs/queue-stats' })).json();
    expect(foreignStats.organization).toMatchObject({ orgId: globex.orgId, runs: { total: 0 } });
    expect(JSON.stringify(foreignStats)).not.toContain(acme.orgId);
    const operator = await t.tenant('Queued Operations', 'ops@queued-operations.test', { operator: true });
    const stats = await t.as(operator, { method: 'GET', url: '/api/v1/chat/jobs/queue-stats' });
    expect(stats.statusCode).toBe(200);
    expect(stats.json().scope).toBe('system');
    expect(Object.keys(stats.json().queues).sort()).toEqual(
      ['intent-classification', 'openai-processing', 'rag-processing', 'rocketreach-api', 'security-classification'],
    );
    // Two runs so far, each two jobs: its entry job (intent, with security and rag beside it) and the LLM's.
    expect(stats.json().totals.completed).toBeGreaterThanOrEqual(4);

    for (const payload of [{ jobIds: [] }, { jobIds: Array.from({ length: 101 }, (_, i) => `j${i}`) }, { jobIds: 'x' }]) {
      expect((await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/status', payload })).statusCode).toBe(400);
    }
  });

  it('replies in the order messages were sent, each with the previous exchange in its history', async () => {
    fake.setLatency(30);
    const threadId = await thread();
    const sent = await Promise.all(['first message', 'second message', 'third message'].map((c) => sendQueued(threadId, c)));
    // The three were accepted concurrently; their order is the order they were stored in.
    const batches = sent.map((res) => res.json().data.tracking.batchId as string);
    await Promise.all(batches.map(finished));
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages as Array<{
      role: string;
      content: string;
      batchId: string;
    }>;
    // Messages sent together are stored before their replies; the replies come in the same order.
    const users = messages.filter((m) => m.role === 'user').map((m) => m.batchId);
    const replies = messages.filter((m) => m.role === 'assistant').map((m) => m.batchId);
    expect(users).toEqual(batches.slice().sort((a, b) => users.indexOf(a) - users.indexOf(b)));
    expect(replies).toEqual(users);
    // Each LLM call saw every earlier exchange of the thread, question then answer.
    const calls = fake.chatRequests().map((r) => ((r.body as FakeChatBody).messages ?? []).filter((m) => m.role !== 'system'));
    expect(calls.map((m) => m.length)).toEqual([1, 3, 5]);
    expect(calls[2]!.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
    const byLast = new Map(calls.map((m) => [JSON.stringify(m.at(-1)?.content), m]));
    expect(byLast.size).toBe(3);
  });

  it('answers the first document again for a repeated Idempotency-Key, creating nothing', async () => {
    const threadId = await thread();
    const key = { 'idempotency-key': `key-${Date.now()}` };
    const first = await sendQueued(threadId, 'same message', key);
    const second = await sendQueued(threadId, 'same message', key);
    expect(second.statusCode).toBe(202);
    expect(second.json().data.tracking.batchId).toBe(first.json().data.tracking.batchId);
    expect(second.json().data.immediate.messageId).toBe(first.json().data.immediate.messageId);
    await finished(first.json().data.tracking.batchId);
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages).toHaveLength(2);
    // The same key in another organization is another request.
    const other = await sendQueued(await thread(globex), 'same message', key, globex);
    expect(other.json().data.tracking.batchId).not.toBe(first.json().data.tracking.batchId);
    await eventually(async () => {
      const doc = await results(other.json().data.tracking.batchId, globex);
      return doc.finishedAt ? doc : undefined;
    }, 20_000, 'the other batch');
    expect((await sendQueued(threadId, 'x', { 'idempotency-key': 'has space' })).statusCode).toBe(400);
  });

  it('retries a transient LLM failure with backoff, then succeeds', async () => {
    fake.failNext(500);
    const threadId = await thread();
    const batchId = (await sendQueued(threadId, 'What is a media kit?')).json().data.tracking.batchId;
    const doc = await finished(batchId);
    expect(doc.status).toBe('completed');
    expect(doc.jobs.openai).toMatchObject({ status: "completed", attempts: 2 });
    const [a, b] = fake.chatRequests();
    expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(900);
  });

  it('fails at once on a permanent error (invalid key), without retries', async () => {
    fake.failNext(401);
    const threadId = await thread();
    const batchId = (await sendQueued(threadId, 'What is a media kit?')).json().data.tracking.batchId;
    const doc = await finished(batchId);
    expect(doc.status).toBe('failed');
    expect(doc.jobs.openai).toMatchObject({ status: 'failed', attempts: 1 });
    expect(doc.errors).toEqual([expect.objectContaining({ stage: 'openai', code: 'invalid_api_key' })]);
    expect(fake.chatRequests()).toHaveLength(1);
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages.map((m: { role: string }) => m.role)).toEqual(['user']);
  });

  it("honours a 429's Retry-After by holding the organization's job, without using an attempt", async () => {
    fake.failNext(429, { headers: { 'retry-after': '1' } });
    const threadId = await thread();
    const batchId = (await sendQueued(threadId, 'How long should a pitch email be?')).json().data.tracking.batchId;
    const doc = await finished(batchId);
    expect(doc.status).toBe('completed');
    const [a, b] = fake.chatRequests();
    expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(1000);
  });

  it('cancels an active job: the LLM call is aborted and no reply is stored', async () => {
    fake.setLatency(10_000);
    const threadId = await thread();
    const batchId = (await sendQueued(threadId, 'Write a statement about the outage')).json().data.tracking.batchId;
    await fake.waitFor((f) => f.inFlight > 0, 10_000);
    const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [`${batchId}.openai`], reason: 'user changed their mind' } });
    expect(res.statusCode).toBe(200);
    expect(res.json().results).toEqual([{ jobId: `${batchId}.openai`, cancelled: true, previousState: 'active' }]);
    await fake.waitFor((f) => f.aborted > 0, 5_000);
    const doc = await results(batchId);
    expect(doc.status).toBe('cancelled');
    const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
    expect(messages.map((m: { role: string }) => m.role)).toEqual(['user']);
    // Cancelling again changes nothing.
    const again = await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [`${batchId}.openai`] } });
    expect(again.json().results[0]).toMatchObject({ cancelled: false });
  });

  it('applies the per-organization request limit with Retry-After', async () => {
    const limited = await createTestApp({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' });
    try {
      const org = await limited.tenant('Limited');
      // Until Redis answers the limit is not enforced (fail open), so wait for it.
      await eventually(async () => limited.container.producer.available(), 10_000, 'Redis');
      const codes: number[] = [];
      for (let i = 0; i < 4; i++) codes.push((await limited.as(org, { method: 'GET', url: '/api/v1/chat/threads' })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429]);
      const res = await limited.as(org, { method: 'GET', url: '/api/v1/chat/threads' });
      expect(res.json().error.code).toBe('rate_limited');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      // Another organization has its own budget.
      const other = await limited.tenant('Unlimited neighbour');
      expect((await limited.as(other, { method: 'GET', url: '/api/v1/chat/threads' })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('POST /comprehensive', () => {
  it('creates a thread, honours the options and waits for the result when asked', async () => {
    const res = await t.as(acme, {
      method: 'POST',
      url: '/api/v1/chat/comprehensive',
      payload: { message: 'Summarise our crisis approach', includeRAG: false, includeContactEnrichment: false, wait: 15 },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.data.jobs.rag).toBeUndefined();
    expect(body.results).toMatchObject({ status: 'completed', totalJobs: 4, completedJobs: 4, results: { rocketreach: { status: 'skipped' } } });
    const threadRes = await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${body.data.tracking.threadId}` });
    expect(threadRes.json().title).toBe('Summarise our crisis approach');
  });

  it('answers 202 without waiting, and 404 for a foreign thread', async () => {
    const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'hello' } });
    expect(res.statusCode).toBe(202);
    await finished(res.json().data.tracking.batchId);
    const foreignThread = await thread(globex);
    const foreign = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'hi', threadId: foreignThread } });
    expect(foreign.statusCode).toBe(404);
    const bad = await t.as(acme, { method: 'POST', url: '/api/v1/chat/comprehensive', payload: { message: 'hi', wait: 600 } });
    expect(bad.statusCode).toBe(400);
  });
});
