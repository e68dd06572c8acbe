import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { startFakeRocketReach, type FakeRocketReach } from '../fakes/rocketreach.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

let llm: FakeOpenAiServer;
let rocketreach: FakeRocketReach;
let t: TestApp;
let acme: Tenant;

beforeAll(async () => {
  llm = await startFakeOpenAi();
  rocketreach = await startFakeRocketReach({
    apiKey: 'rr-test-key',
    pollsUntilComplete: 0,
    people: [{ name: 'Sarah Chen', currentEmployer: 'The Verge', currentTitle: 'Senior Reporter', emails: [{ email: 'sarah@theverge.example', grade: 'A' }] }],
  });
  t = await createTestApp(
    {
      OPENAI_API_KEY: llm.apiKey,
      OPENAI_BASE_URL: llm.url,
      ROCKETREACH_API_KEY: 'rr-test-key',
      ROCKETREACH_BASE_URL: rocketreach.url,
      ROCKETREACH_POLL_INTERVAL_MS: '10',
    },
    { workers: true },
  );
  acme = await t.tenant('Failures org');
});
afterAll(async () => {
  await t.close();
  await llm.close();
  await rocketreach.close();
});

async function send(content: string): Promise<{ batchId: string; threadId: string }> {
  const threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: {} })).json().id;
  const res = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
  expect(res.statusCode).toBe(202);
  return { batchId: res.json().data.tracking.batchId, threadId };
}

function finished(batchId: string) {
  return eventually(async () => {
    const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
    return doc.finishedAt ? doc : undefined;
  }, 20_000, 'the batch to finish');
}

describe('a stage that fails for good', () => {
  it('looks contacts up through RocketReach when the intent is a contact lookup', async () => {
    const { batchId } = await send('Find the email of Sarah Chen at The Verge');
    const doc = await finished(batchId);
    expect(doc.results.intent).toMatchObject({ category: 'contact_lookup', entities: { person: 'Sarah Chen' } });
    expect(doc.results.rocketreach).toMatchObject({ status: 'completed', contacts: [expect.objectContaining({ name: 'Sarah Chen' })] });
    expect(rocketreach.requests.every((r) => r.headers['api-key'] === 'rr-test-key')).toBe(true);
    // The contacts reach the LLM's prompt.
    expect(JSON.stringify(llm.chatRequests().at(-1)?.body)).toContain('sarah@theverge.example');
  });

  it('rocketreach (optional): the reply is still produced and the failure is listed', async () => {
    rocketreach.failNext(401);
    const { batchId } = await send('Find the phone number of Mark Jones at Reuters');
    const doc = await finished(batchId);
    expect(doc.status).toBe('completed');
    expect(doc.jobs.rocketreach).toMatchObject({ status: 'failed', attempts: 1 });
    expect(doc.errors).toEqual([expect.objectContaining({ stage: 'rocketreach', code: 'invalid_api_key' })]);
    expect(doc.results.openai.choices[0].message.content.length).toBeGreaterThan(0);
    expect(doc.completedJobs).toBe(4);
    expect(doc.totalJobs).toBe(5);
  });

  it('security: fails closed — nothing is sent to the external LLM', async () => {
    const original = t.container.stages.classifySecurity;
    t.container.stages.classifySecurity = () => {
      throw new Error('detector crashed');
    };
    const before = llm.chatRequests().length;
    try {
      const { batchId } = await send('Write a LinkedIn post about our award');
      const doc = await finished(batchId);
      expect(doc.status).toBe('completed');
      expect(doc.jobs.security).toMatchObject({ status: 'failed', attempts: 3 });
      expect(doc.results.openai).toMatchObject({ provider: 'local-guard' });
      expect(llm.chatRequests().length).toBe(before);
    } finally {
      t.container.stages.classifySecurity = original;
    }
  }, 30_000);
});

describe('cancelling', () => {
  it('a waiting job is removed, its run cancelled, and no reply is stored later', async () => {
    const openaiWorker = t.queueSystem!.workers!.workers.get('openai')!;
    await openaiWorker.pause();
    try {
      const { batchId, threadId } = await send('Draft a holding statement');
      const jobId = `${batchId}.openai`;
      await eventually(async () => (await t.container.producer.queues.openai.getJob(jobId)) ?? undefined, 10_000, 'the openai job');
      const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [jobId] } });
      expect(res.json().results).toEqual([{ jobId, cancelled: true, previousState: 'waiting' }]);
      expect(res.json().summary).toEqual({ requested: 1, cancelled: 1, notFound: 0 });
      expect(await t.container.producer.queues.openai.getJob(jobId)).toBeUndefined();
      openaiWorker.resume();
      const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
      expect(doc.status).toBe('cancelled');
      expect(doc.jobs.openai.status).toBe('cancelled');
      // A later message in the same thread is answered; the cancelled one never is.
      const next = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'hello again' } });
      await finished(next.json().data.tracking.batchId);
      const messages = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/threads/${threadId}/messages` })).json().messages;
      expect(messages.map((m: { role: string; batchId: string }) => [m.role, m.batchId === batchId])).toEqual([
        ['user', true],
        ['user', false],
        ['assistant', false],
      ]);
    } finally {
      openaiWorker.resume();
    }
  });

  it("a cancel moves the thread's next message on at once, not after the reconciler's sweep", async () => {
    const openaiWorker = t.queueSystem!.workers!.workers.get('openai')!;
    await openaiWorker.pause();
    try {
      const { batchId, threadId } = await send('Draft a holding statement');
      const jobId = `${batchId}.openai`;
      await eventually(async () => (await t.container.producer.queues.openai.getJob(jobId)) ?? undefined, 10_000, 'the openai job');
      const next = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'and a shorter one' } });
      const nextId = next.json().data.tracking.batchId;
      // Its reply waits for the first message: every other step done, no reply job added.
      await eventually(async () => {
        const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${nextId}/results` })).json();
        return doc.completedJobs === 4 || undefined;
      }, 10_000, 'the second run to wait for its turn');
      expect(await t.container.producer.queues.openai.getJob(`${nextId}.openai`)).toBeUndefined();
      const res = await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [jobId] } });
      expect(res.json().summary).toMatchObject({ cancelled: 1 });
      // The cancel itself added the next run's reply job: nothing waits for the reconciler (60 s).
      expect(await t.container.producer.queues.openai.getJob(`${nextId}.openai`)).toBeDefined();
      openaiWorker.resume();
      expect((await finished(nextId)).status).toBe('completed');
    } finally {
      openaiWorker.resume();
    }
  });
});
