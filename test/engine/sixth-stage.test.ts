import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';
import { catalogWithEcho } from '../unit/engine/echo-catalog.js';

/*
 * A throw-away sixth stage registered in a catalog passed in — nothing else changes — runs
 * through the whole server: PostgreSQL run store, BullMQ queues and workers, both endpoints.
 */

const seen: unknown[] = [];
let t: TestApp;
let acme: Tenant;
let threadId: string;

beforeAll(async () => {
  t = await createTestApp({}, { workers: true, catalog: catalogWithEcho(seen) });
  acme = await t.tenant('Echo org');
  threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'Six stages' } })).json().id;
});

afterAll(async () => {
  await t?.close();
});

describe('a sixth stage in a catalog passed in', () => {
  it('runs on the blocking endpoint, and its result is in the batch results', async () => {
    const res = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages`, payload: { content: 'blocking hello' } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.results.echo).toEqual({ echoed: 'BLOCKING HELLO', length: 14 });
    expect(body.jobs.echo).toMatchObject({ id: `${body.batchId}.echo`, queue: 'echo-processing', status: 'completed' });
    expect(body.assistantMessage).not.toBeNull();
  });

  it('runs through its own queue and worker on the queued endpoint', async () => {
    const res = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content: 'queued hello' } });
    expect(res.statusCode).toBe(202);
    expect(res.json().data.jobs.echo).toMatchObject({ queue: 'echo-processing' });
    const batchId = res.json().data.tracking.batchId;
    const document = await eventually(async () => {
      const doc = (await t.as(acme, { method: 'GET', url: `/api/v1/chat/batch/${batchId}/results` })).json();
      return doc.finishedAt ? doc : undefined;
    }, 15_000, 'the queued run to finish');
    expect(document.status).toBe('completed');
    expect(document.results.echo).toEqual({ echoed: 'QUEUED HELLO', length: 12 });
    expect(document.totalJobs).toBe(6);
    expect(seen).toEqual([
      { echoed: 'BLOCKING HELLO', length: 14 },
      { echoed: 'QUEUED HELLO', length: 12 },
    ]);
    expect([...t.queueSystem!.workers!.workers.keys()]).toContain('echo');
  });
});
