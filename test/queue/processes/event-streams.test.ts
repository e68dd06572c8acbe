/**
 * Real processes: two `api` processes and one `worker` on one database and queue prefix, the
 * OpenAI provider pointed at the loopback fake streaming its reply slowly. The worker produces a
 * run's events; a client follows the batch on the first API process, drops the connection
 * mid-reply, and resumes on the second with Last-Event-ID: it gets exactly the events it missed,
 * and the tokens add up to the stored reply.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../../fakes/openai.fake.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { bootstrapTenant, deleteRedisKeys, http, killAll, serverEnv, startServerProcess, type ProcessTenant, type ServerProcess } from '../../support/processes.js';
import { openSse, type SseMessage } from '../../support/sse-client.js';

const REPLY = Array.from({ length: 30 }, (_, i) => `token${i}`).join(' ');

let database: TestDatabase | undefined;
let fake: FakeOpenAiServer | undefined;
let prefix: string | undefined;
let apiA: ServerProcess;
let apiB: ServerProcess;
let tenant: ProcessTenant;

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `test-${database.name}`;
  fake = await startFakeOpenAi({ apiKey: 'test', reply: () => REPLY });
  fake.setStreaming({ firstTokenMs: 20, tokenIntervalMs: 20 });
  const env = serverEnv({ databaseUrl: database.url, prefix }, { OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, RATE_LIMIT_MAX: '100000' });
  tenant = await bootstrapTenant(env, 'Stream Test', 'admin@stream.test');
  [apiA, apiB] = await Promise.all([
    startServerProcess('api', env, { name: 'api-a' }),
    startServerProcess('api', env, { name: 'api-b' }),
    startServerProcess('worker', env, { name: 'worker' }),
  ]);
}, 90_000);

afterAll(async () => {
  await killAll();
  await fake?.close();
  if (prefix) await deleteRedisKeys(prefix);
  await database?.drop();
}, 30_000);

const text = (messages: SseMessage[]) => messages.filter((m) => m.event === 'token').map((m) => m.json.text).join('');

describe('event streams across processes', () => {
  it('a worker produces, one API process serves, another resumes after Last-Event-ID', async () => {
    const headers = tenant.headers;
    const thread = await http(apiA.baseUrl(), 'POST', '/api/v1/chat/threads', { headers, body: { title: 'streams' } });
    const threadStream = await openSse(`${apiB.baseUrl()}/api/v1/chat/threads/${thread.body.id}/events`, headers);
    const sent = await http(apiA.baseUrl(), 'POST', `/api/v1/chat/threads/${thread.body.id}/messages/queued`, { headers, body: { content: 'Draft a statement' } });
    expect(sent.status).toBe(202);
    const batchId: string = sent.body.data.tracking.batchId;

    const first = await openSse(`${apiA.baseUrl()}/api/v1/chat/batch/${batchId}/events`, headers);
    await first.waitFor((messages) => messages.filter((m) => m.event === 'token').length >= 3, 30_000);
    first.close();
    const seen = [...first.messages];
    const rest = await openSse(`${apiB.baseUrl()}/api/v1/chat/batch/${batchId}/events`, { ...headers, 'last-event-id': seen.at(-1)!.id! });
    await rest.closed;
    const all = [...seen, ...rest.messages];
    expect(all.map((m) => Number(m.id))).toEqual(all.map((_, i) => i + 1));
    expect(all.at(-1)?.event).toBe('end');
    expect(text(all)).toBe(REPLY);

    // The thread's stream on the other API process saw the same run, in the same order.
    await threadStream.waitFor((messages) => messages.some((m) => m.event === 'end' && m.json.runId === batchId), 30_000);
    const ofRun = threadStream.messages.filter((m) => m.json.runId === batchId);
    expect(ofRun.map((m) => m.json.seq)).toEqual(all.map((m) => Number(m.id)));
    threadStream.close();
  }, 60_000);
});
