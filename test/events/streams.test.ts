import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';
import { openSse, type SseMessage } from '../support/sse-client.js';

let fake: FakeOpenAiServer;
let t: TestApp;
let base: string;
let acme: Tenant;
let globex: Tenant;

beforeAll(async () => {
  fake = await startFakeOpenAi();
  t = await createTestApp({ OPENAI_API_KEY: fake.apiKey, OPENAI_BASE_URL: fake.url, EVENTS_HEARTBEAT_MS: '1000' }, { workers: true });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/api/v1/chat`;
  acme = await t.tenant('Acme Streams');
  globex = await t.tenant('Globex Streams');
});
afterAll(async () => {
  await t.close();
  await fake.close();
});
afterEach(() => {
  fake.setStreaming({});
  fake.reset();
});

async function thread(tenant: Tenant = acme): Promise<string> {
  return (await t.as(tenant, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 's' } })).json().id;
}

async function sendQueued(threadId: string, content: string, tenant: Tenant = acme): Promise<string> {
  const res = await t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
  expect(res.statusCode).toBe(202);
  return res.json().data.tracking.batchId;
}

const tokens = (messages: SseMessage[]) => {
  let text = '';
  for (const m of messages) {
    if (m.event === 'reset') text = '';
    if (m.event === 'token') text += m.json.text;
  }
  return text;
};

const LONG_REPLY = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');

describe('GET /batch/:batchId/events', () => {
  it('streams accepted, every stage, the tokens and the final status, each with its seq as id, and ends', async () => {
    const batchId = await sendQueued(await thread(), 'Draft a short press release about our new analytics product');
    const stream = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    await stream.closed;
    const seqs = stream.messages.map((m) => Number(m.id));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(stream.messages.map((m) => m.json.seq)).toEqual(seqs);
    expect(stream.messages[0]).toMatchObject({ event: 'run', json: { status: 'accepted', runId: batchId } });
    expect(stream.messages.at(-2)).toMatchObject({ event: 'run', json: { status: 'completed' } });
    expect(stream.messages.at(-1)).toMatchObject({ event: 'end', json: { status: 'completed' } });
    const steps = stream.messages.filter((m) => m.event === 'step').map((m) => `${m.json.stage}:${m.json.status}`);
    for (const stage of ['intent', 'security', 'rag', 'rocketreach', 'openai']) {
      expect(steps).toContain(`${stage}:started`);
      expect(steps).toContain(`${stage}:completed`);
    }
    const reply = await t.container.repositories.runs.assistantMessage(batchId);
    expect(tokens(stream.messages)).toBe(reply?.content);
    expect(fake.chatRequests().at(-1)?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('resumes after Last-Event-ID with exactly the events it missed, mid-reply', async () => {
    fake.setReply(() => LONG_REPLY);
    fake.setStreaming({ firstTokenMs: 5, tokenIntervalMs: 15 });
    const batchId = await sendQueued(await thread(), 'Draft a statement about the product recall');
    const first = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    await first.waitFor((messages) => messages.filter((m) => m.event === 'token').length >= 2);
    first.close();
    const seen = [...first.messages];
    const lastId = seen.at(-1)!.id!;
    expect(tokens(seen).length).toBeGreaterThan(0);
    expect(tokens(seen).length).toBeLessThan(LONG_REPLY.length);

    const rest = await openSse(`${base}/batch/${batchId}/events`, { ...acme.headers, 'last-event-id': lastId });
    await rest.closed;
    const all = [...seen, ...rest.messages];
    expect(all.map((m) => Number(m.id))).toEqual(all.map((_, i) => i + 1));
    expect(tokens(all)).toBe(LONG_REPLY);
    expect(rest.messages[0]?.json.seq).toBe(Number(lastId) + 1);

    // The same through the query parameter, once the run has ended: only what follows.
    const again = await openSse(`${base}/batch/${batchId}/events?lastEventId=${lastId}`, acme.headers);
    await again.closed;
    expect(again.messages.map((m) => m.id)).toEqual(rest.messages.map((m) => m.id));
  });

  it('sends reset when the reply is retried after a partial stream, so the text is not duplicated', async () => {
    fake.setReply(() => LONG_REPLY);
    // Paced, so that the first chunks reach the client before the connection is cut.
    fake.setStreaming({ tokenIntervalMs: 10 });
    fake.cutNextStreamAfter(3);
    const batchId = await sendQueued(await thread(), 'Write a short post about our launch');
    const stream = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    await stream.closed;
    const events = stream.messages.map((m) => (m.event === 'step' ? `${m.json.stage}:${m.json.status}` : m.event));
    expect(events).toContain('openai:retrying');
    const resetAt = events.indexOf('reset');
    expect(resetAt).toBeGreaterThan(events.indexOf('openai:retrying'));
    expect(stream.messages.slice(0, resetAt).some((m) => m.event === 'token')).toBe(true);
    expect(stream.messages.find((m) => m.event === 'reset')?.json).toMatchObject({ stage: 'openai', attempt: 2 });
    expect(tokens(stream.messages)).toBe(LONG_REPLY);
    expect((await t.container.repositories.runs.assistantMessage(batchId))?.content).toBe(LONG_REPLY);
  });

  it('a cancel aborts the LLM stream and the batch stream ends with cancelled', async () => {
    fake.setReply(() => LONG_REPLY);
    fake.setStreaming({ firstTokenMs: 5, tokenIntervalMs: 200 });
    const batchId = await sendQueued(await thread(), 'Draft a long statement');
    const stream = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    await stream.waitFor((messages) => messages.some((m) => m.event === 'token'));
    const cancelled = await t.as(acme, { method: 'POST', url: '/api/v1/chat/jobs/cancel', payload: { jobIds: [`${batchId}.openai`], reason: 'enough' } });
    expect(cancelled.statusCode).toBe(200);
    await stream.closed;
    expect(stream.messages.slice(-2).map((m) => [m.event, m.json.status])).toEqual([
      ['run', 'cancelled'],
      ['end', 'cancelled'],
    ]);
    await fake.waitFor((f) => f.aborted >= 1, 10_000);
    expect(await t.container.repositories.runs.assistantMessage(batchId)).toBeUndefined();
  });

  it('answers 404 for another organization’s batch, and 400 for a Last-Event-ID that is not one', async () => {
    const batchId = await sendQueued(await thread(), 'Hello there');
    const foreign = await openSse(`${base}/batch/${batchId}/events`, globex.headers);
    await foreign.closed;
    expect(foreign.status).toBe(404);
    expect(JSON.parse(foreign.body)).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    const bad = await openSse(`${base}/batch/${batchId}/events`, { ...acme.headers, 'last-event-id': 'x1' });
    await bad.closed;
    expect(bad.status).toBe(400);
  });
});

describe('GET /batch/:batchId/results?after=', () => {
  it('lists the events after the cursor and the cursor to ask with next', async () => {
    const batchId = await sendQueued(await thread(), 'Draft a pitch for our CEO interview');
    await eventually(async () => {
      const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
      return doc.finishedAt !== null;
    });
    const all = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results?after=0` })).json();
    expect(all.events[0]).toMatchObject({ seq: 1, type: 'run', status: 'accepted' });
    expect(all.eventCursor).toBe(all.events.at(-1).seq);
    const later = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results?after=3` })).json();
    expect(later.events.map((e: { seq: number }) => e.seq)).toEqual(all.events.slice(3).map((e: { seq: number }) => e.seq));
    const none = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results?after=${all.eventCursor}` })).json();
    expect(none.events).toEqual([]);
    expect(none.eventCursor).toBe(all.eventCursor);
    const plain = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
    expect(plain.events).toBeUndefined();
  });
});

describe('GET /threads/:threadId/events', () => {
  it('streams every run of the thread, stays open, and resumes exactly after its cursor', async () => {
    const threadId = await thread();
    const stream = await openSse(`${base}/threads/${threadId}/events`, acme.headers);
    const one = await sendQueued(threadId, 'First: who approves statements?');
    await stream.waitFor((messages) => messages.some((m) => m.event === 'end' && m.json.runId === one));
    const two = await sendQueued(threadId, 'Second: draft a holding statement');
    await stream.waitFor((messages) => messages.some((m) => m.event === 'run' && m.json.runId === two && m.json.status === 'accepted'));
    const cut = stream.messages.length;
    const cursor = stream.messages.at(-1)!.id!;
    stream.close();
    expect(cursor).toMatch(/^t\d+/);

    const resumed = await openSse(`${base}/threads/${threadId}/events`, { ...acme.headers, 'last-event-id': cursor });
    await resumed.waitFor((messages) => messages.some((m) => m.event === 'end' && m.json.runId === two));
    expect(resumed.ended).toBe(false);
    const runTwo = [...stream.messages.slice(0, cut), ...resumed.messages].filter((m) => m.json.runId === two).map((m) => m.json.seq);
    expect(runTwo).toEqual(runTwo.map((_, i) => i + 1));
    expect(resumed.messages.some((m) => m.json.runId === one)).toBe(false);
    await resumed.waitFor(() => resumed.comments > 0);
    resumed.close();
  });

  it('answers 404 for another organization’s thread', async () => {
    const threadId = await thread();
    const foreign = await openSse(`${base}/threads/${threadId}/events`, globex.headers);
    await foreign.closed;
    expect(foreign.status).toBe(404);
  });
});

describe('stream tickets', () => {
  async function ticket(body: Record<string, string>, tenant: Tenant = acme) {
    return t.as(tenant, { method: 'POST', url: '/api/v1/chat/stream-tickets', payload: body });
  }

  it('open the one stream they were issued for, once, without the API token', async () => {
    const threadId = await thread();
    const batchId = await sendQueued(threadId, 'Draft a short press release');
    const issued = await ticket({ batchId });
    expect(issued.statusCode).toBe(201);
    const { ticket: value, url } = issued.json();
    expect(url).toBe(`/api/v1/chat/batch/${batchId}/events?ticket=${value}`);
    const stream = await openSse(`${base}/batch/${batchId}/events?ticket=${value}`);
    expect(stream.status).toBe(200);
    await stream.closed;
    expect(stream.messages.at(-1)?.event).toBe('end');

    const reused = await openSse(`${base}/batch/${batchId}/events?ticket=${value}`);
    await reused.closed;
    expect(reused.status).toBe(401);

    const other = await sendQueued(threadId, 'Another message');
    const forOther = (await ticket({ batchId })).json().ticket;
    const wrongBatch = await openSse(`${base}/batch/${other}/events?ticket=${forOther}`);
    await wrongBatch.closed;
    expect(wrongBatch.status).toBe(404);
    const forBatch = (await ticket({ batchId })).json().ticket;
    const onThread = await openSse(`${base}/threads/${threadId}/events?ticket=${forBatch}`);
    await onThread.closed;
    expect(onThread.status).toBe(404);
    // A ticket is no API token: other routes do not take it.
    const forThread = (await ticket({ threadId })).json().ticket;
    const elsewhere = await t.app.inject({ method: 'GET', url: `/api/v1/chat/threads/${threadId}?ticket=${forThread}` });
    expect(elsewhere.statusCode).toBe(401);
    const threadStream = await openSse(`${base}/threads/${threadId}/events?ticket=${forThread}`);
    expect(threadStream.status).toBe(200);
    threadStream.close();
  });

  it('are refused for another organization’s batch or thread, and when made up', async () => {
    const threadId = await thread();
    const batchId = await sendQueued(threadId, 'Hello');
    expect((await ticket({ batchId }, globex)).statusCode).toBe(404);
    expect((await ticket({ threadId }, globex)).statusCode).toBe(404);
    expect((await ticket({ batchId, threadId })).statusCode).toBe(400);
    expect((await ticket({})).statusCode).toBe(400);
    const madeUp = await openSse(`${base}/batch/${batchId}/events?ticket=hjst_${'A'.repeat(32)}`);
    await madeUp.closed;
    expect(madeUp.status).toBe(401);
    const stored = await t.database.pool.query('select token_hash from stream_tickets');
    const issued = (await ticket({ batchId })).json().ticket as string;
    const after = await t.database.pool.query('select token_hash from stream_tickets');
    expect(after.rows.length).toBe(stored.rows.length + 1);
    expect(after.rows.some((row) => row.token_hash === issued)).toBe(false);
  });
});

describe('the OpenAPI document', () => {
  it('describes the event streams, the ticket route and the results cursor', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    expect(doc.paths['/api/v1/chat/batch/{batchId}/events'].get.description).toContain('Last-Event-ID');
    expect(doc.paths['/api/v1/chat/threads/{threadId}/events'].get.summary).toMatch(/stays open/);
    expect(doc.paths['/api/v1/chat/stream-tickets'].post.responses['201']).toBeDefined();
    const params = doc.paths['/api/v1/chat/batch/{batchId}/results'].get.parameters.map((p: { name: string }) => p.name);
    expect(params).toContain('after');
  });
});

describe('retention', () => {
  it('prunes the events of runs past it, after which a finished batch’s stream is 410 and its results remain', async () => {
    const batchId = await sendQueued(await thread(), 'Hello, briefly');
    const done = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    await done.closed;
    const pruned = await t.container.runEvents.prune(0);
    expect(pruned.runs).toBeGreaterThan(0);
    expect(await t.container.runEvents.read({ orgId: acme.orgId, runId: batchId }, 0)).toEqual([]);
    const gone = await openSse(`${base}/batch/${batchId}/events`, acme.headers);
    await gone.closed;
    expect(gone.status).toBe(410);
    expect(JSON.parse(gone.body).error.code).toBe('events_expired');
    const results = await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` });
    expect(results.json().status).toBe('completed');
  });
});
