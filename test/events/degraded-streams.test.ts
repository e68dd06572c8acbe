import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';
import { freePort } from '../support/ports.js';
import { openSse, type SseMessage } from '../support/sse-client.js';

/** Redis is never reachable here: runs are driven in-process (degraded mode) and still stream. */
let fake: FakeOpenAiServer;
let t: TestApp;
let base: string;
let acme: Tenant;

const REPLY = Array.from({ length: 20 }, (_, i) => `piece${i}`).join(' ');

beforeAll(async () => {
  fake = await startFakeOpenAi({ reply: () => REPLY });
  fake.setStreaming({ firstTokenMs: 20, tokenIntervalMs: 10 });
  t = await createTestApp({ REDIS_URL: `redis://127.0.0.1:${await freePort()}`, OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url }, { workers: true });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/api/v1/chat`;
  acme = await t.tenant('Degraded Streams');
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

const text = (messages: SseMessage[]) => messages.filter((m) => m.event === 'token').map((m) => m.json.text).join('');

describe('event streams in degraded mode', () => {
  it('stream a run driven in-process, queued and blocking alike, with the thread stream following both', async () => {
    const threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: {} })).json().id;
    const threadStream = await openSse(`${base}/threads/${threadId}/events`, acme.headers);
    const res = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'Draft a tweet about our launch' } });
    expect(res.json()).toMatchObject({ degraded: true });
    const batchId: string = res.json().data.tracking.batchId;
    const stream = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    await stream.closed;
    expect(stream.messages.map((m) => Number(m.id))).toEqual(stream.messages.map((_, i) => i + 1));
    expect(text(stream.messages)).toBe(REPLY);
    expect(stream.messages.at(-1)).toMatchObject({ event: 'end', json: { status: 'completed' } });

    const blocking = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: 'And a second one' } });
    expect(blocking.statusCode).toBe(200);
    const second: string = blocking.json().batchId;
    await threadStream.waitFor((messages) => messages.some((m) => m.event === 'end' && m.json.runId === second));
    expect(text(threadStream.messages.filter((m) => m.json.runId === second))).toBe(REPLY);
    expect(text(threadStream.messages.filter((m) => m.json.runId === batchId))).toBe(REPLY);
    threadStream.close();
  });
});
