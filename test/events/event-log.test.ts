import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/engine/ports/run-events.js';
import { createTestApp, eventually, type Tenant, type TestApp } from '../support/app.js';

let t: TestApp;
let acme: Tenant;

beforeAll(async () => {
  t = await createTestApp({}, { workers: true });
  acme = await t.tenant('Acme Events');
});
afterAll(async () => {
  await t.close();
});

async function queued(content: string): Promise<{ threadId: string; batchId: string }> {
  const threadId = (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'e' } })).json().id;
  const res = await t.as(acme, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content } });
  return { threadId, batchId: res.json().data.tracking.batchId };
}

describe('the event log of a run', () => {
  it('records accepted, every step, the streamed reply and the end, in one gap-free sequence', async () => {
    const { batchId } = await queued('Draft a short press release about our new analytics product');
    const target = { orgId: acme.orgId, runId: batchId };
    const events = await eventually(async () => {
      const all = await t.container.runEvents.read(target, 0);
      return all.at(-1)?.type === 'end' ? all : undefined;
    });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events[0]).toMatchObject({ type: 'run', status: 'accepted', seq: 1 });
    const text = events.filter((e): e is Extract<RunEvent, { type: 'token' }> => e.type === 'token').map((e) => e.text).join('');
    const reply = await t.container.repositories.runs.assistantMessage(batchId);
    expect(text).toBe(reply?.content);
    const final = events.at(-2);
    expect(final).toMatchObject({ type: 'run', status: 'completed', messageId: reply?.id });
    for (const stage of ['intent', 'security', 'rag', 'rocketreach', 'openai']) {
      expect(events.some((e) => e.type === 'step' && e.stage === stage && e.status === 'completed')).toBe(true);
    }
  });
});
