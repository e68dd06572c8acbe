import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Tenant, type TestApp } from '../support/app.js';

let t: TestApp;
let acme: Tenant;
/** A second user of the same organization. */
let colleague: Tenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await t.tenant('Acme Keys');
  const tenancy = t.container.repositories.tenancy;
  const user = await tenancy.upsertUser(`colleague-${randomUUID()}@keys.test`);
  await tenancy.setMembership(acme.orgId, user.id, 'member');
  const token = await tenancy.createToken(user.id);
  colleague = { orgId: acme.orgId, userId: user.id, token: token.token, headers: { authorization: `Bearer ${token.token}`, 'x-organization-id': acme.orgId } };
});
afterAll(() => t.close());

async function thread(): Promise<string> {
  return (await t.as(acme, { method: 'POST', url: '/api/v1/chat/threads', payload: { title: 'keys' } })).json().id;
}

const key = () => ({ 'idempotency-key': `key-${randomUUID()}` });

function queued(threadId: string, content: string, headers: Record<string, string>, tenant: Tenant = acme) {
  return t.as(tenant, { method: 'POST', url: `/api/v1/chat/threads/${threadId}/messages/queued`, payload: { content }, headers });
}

function comprehensive(payload: object, headers: Record<string, string>, tenant: Tenant = acme) {
  return t.as(tenant, { method: 'POST', url: '/api/v1/chat/comprehensive', payload, headers });
}

async function count(table: 'runs' | 'threads' | 'messages'): Promise<number> {
  return Number((await t.database.pool.query(`select count(*) as n from ${table} where org_id = $1`, [acme.orgId])).rows[0].n);
}

async function counts(): Promise<Record<string, number>> {
  return { runs: await count('runs'), threads: await count('threads'), messages: await count('messages') };
}

describe('Idempotency-Key on the queued endpoint', () => {
  it('answers a replay with the first answer and creates nothing', async () => {
    const threadId = await thread();
    const headers = key();
    const first = await queued(threadId, 'Draft the launch note', headers);
    expect(first.statusCode).toBe(202);
    const before = await counts();
    const replay = await queued(threadId, 'Draft the launch note', headers);
    expect(replay.statusCode).toBe(202);
    // The same message, batch, jobs and thread; its place and estimate are as they stand now.
    const live = ({ tracking: { queuePosition, estimatedCompletion, ...tracking }, ...data }: Record<string, any>) => ({ ...data, tracking });
    expect(live(replay.json().data)).toEqual(live(first.json().data));
    expect(replay.json().data.tracking.queuePosition.organization).toBeLessThanOrEqual(first.json().data.tracking.queuePosition.organization);
    expect(await counts()).toEqual(before);
  });

  it('refuses the same key with another body or another thread (422 idempotency_key_reused), creating nothing', async () => {
    const threadId = await thread();
    const other = await thread();
    const headers = key();
    expect((await queued(threadId, 'one text', headers)).statusCode).toBe(202);
    const before = await counts();
    for (const res of [await queued(threadId, 'another text', headers), await queued(other, 'one text', headers)]) {
      expect(res.statusCode).toBe(422);
      expect(res.json().error.code).toBe('idempotency_key_reused');
    }
    expect(await counts()).toEqual(before);
  });

  it('keeps keys of different users and of different routes apart', async () => {
    const threadId = await thread();
    const headers = key();
    const mine = await queued(threadId, 'same text', headers);
    const theirs = await queued(threadId, 'same text', headers, colleague);
    expect(theirs.statusCode).toBe(202);
    expect(theirs.json().data.tracking.batchId).not.toBe(mine.json().data.tracking.batchId);
    // Another user's different request with that key is theirs to make.
    const theirsOther = await queued(threadId, 'their own text', key(), colleague);
    expect(theirsOther.statusCode).toBe(202);
    const elsewhere = await comprehensive({ message: 'same text', threadId }, headers);
    expect(elsewhere.statusCode).toBe(202);
    expect(elsewhere.json().data.tracking.batchId).not.toBe(mine.json().data.tracking.batchId);
  });

  it('lets concurrent requests with one key create one run', async () => {
    const threadId = await thread();
    const headers = key();
    const before = await count('runs');
    const answers = await Promise.all(Array.from({ length: 4 }, () => queued(threadId, 'sent four times at once', headers)));
    expect(answers.map((res) => res.statusCode)).toEqual([202, 202, 202, 202]);
    expect(new Set(answers.map((res) => res.json().data.tracking.batchId)).size).toBe(1);
    expect(await count('runs')).toBe(before + 1);
    const mixed = key();
    const [a, b] = await Promise.all([queued(threadId, 'first body', mixed), queued(threadId, 'second body', mixed)]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([202, 422]);
  });

  it('validates the header: 1–255 visible ASCII characters', async () => {
    const threadId = await thread();
    expect((await queued(threadId, 'x', { 'idempotency-key': 'k'.repeat(255) })).statusCode).toBe(202);
    for (const bad of ['k'.repeat(256), 'has space', 'tab\there', 'ünï', '']) {
      const res = await queued(threadId, 'x', { 'idempotency-key': bad });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json().error).toEqual({ code: 'invalid_request', message: 'headers.idempotency-key must be 1–255 visible ASCII characters' });
    }
  });
});

describe('Idempotency-Key on /comprehensive', () => {
  it('answers a replay with the first batch and thread, and makes no new thread', async () => {
    const headers = key();
    const payload = { message: 'Find the editor of Globex News', includeRAG: false, contacts: [{ name: 'Sarah Chen', employer: 'Globex' }] };
    const first = await comprehensive(payload, headers);
    expect(first.statusCode).toBe(202);
    const before = await counts();
    // The same request with its keys in another order is the same request.
    const replay = await comprehensive({ contacts: [{ employer: 'Globex', name: 'Sarah Chen' }], includeRAG: false, message: 'Find the editor of Globex News' }, headers);
    expect(replay.statusCode).toBe(202);
    const { queuePosition: _position, estimatedCompletion: _estimate, ...tracking } = first.json().data.tracking;
    expect(replay.json().data.tracking).toMatchObject(tracking);
    expect(replay.json().data.tracking.queuePosition.overall).toBeLessThanOrEqual(first.json().data.tracking.queuePosition.overall);
    expect(replay.json().data.immediate.messageId).toBe(first.json().data.immediate.messageId);
    expect(await counts()).toEqual(before);
  });

  it('refuses the key with another body, and writes no thread for it', async () => {
    const headers = key();
    expect((await comprehensive({ message: 'first' }, headers)).statusCode).toBe(202);
    const before = await counts();
    const res = await comprehensive({ message: 'second' }, headers);
    expect(res.statusCode).toBe(422);
    expect(res.json().error.code).toBe('idempotency_key_reused');
    expect(await counts()).toEqual(before);
  });
});
