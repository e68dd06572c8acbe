import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

describe('the blocking endpoint when its client disconnects', () => {
  let fake: FakeOpenAiServer;
  let t: TestApp;
  let tenant: Tenant;

  beforeAll(async () => {
    // The LLM answers only after a minute: long after the client has gone.
    fake = await startFakeOpenAi({ latencyMs: 60_000 });
    t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url });
    tenant = await t.tenant();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it('aborts the provider call, closes the run as cancelled (client_disconnected) and lets the next message through', async () => {
    const threadId = (await t.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'hang up' } })).json().id;
    const { port } = t.app.server.address() as AddressInfo;
    const body = JSON.stringify({ content: 'Write a long press release about our new product' });
    const client = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: `/api/v1/chat/threads/${threadId}/messages`,
      headers: { ...tenant.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.end(body);

    await fake.waitFor((f) => f.inFlight === 1, 10_000);
    client.destroy();
    await closed;
    // The fake sees its request aborted: the provider call was cancelled, not left to run.
    await fake.waitFor((f) => f.aborted === 1 && f.inFlight === 0, 10_000);

    const run = await eventually(async () => {
      const { rows } = await t.container.database.pool.query(
        'select id, status, error, finished_at from runs where thread_id = $1 and finished_at is not null',
        [threadId],
      );
      return rows[0];
    }, 10_000, 'the run to be closed');
    expect(run).toMatchObject({ status: 'cancelled', error: { code: 'client_disconnected' } });
    const { rows: steps } = await t.container.database.pool.query('select stage, status from run_steps where run_id = $1', [run.id]);
    expect(steps.find((s) => s.stage === 'openai')).toMatchObject({ status: 'cancelled' });
    expect(steps.every((s) => ['completed', 'cancelled', 'failed'].includes(s.status))).toBe(true);
    const { rows: replies } = await t.container.database.pool.query("select 1 from messages where run_id = $1 and role = 'assistant'", [run.id]);
    expect(replies).toHaveLength(0);

    // The thread is not stuck behind the abandoned run.
    fake.setLatency(0);
    const next = await t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: 'Shorter, please' } });
    expect(next.statusCode).toBe(200);
    expect(next.json()).toMatchObject({ status: 'completed', assistantMessage: { content: expect.stringContaining('Shorter, please') } });
  });
});
