import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/engine/catalog.js';
import type { RocketReachStage } from '../../../src/domain/stages/rocketreach/rocketreach.stage.js';
import { createHarness, localServices } from './harness.js';

/** A contact lookup service that needs the API only when contacts are asked for, and counts its calls. */
function countingLookup(): RocketReachStage & { calls: number } {
  const lookup = {
    calls: 0,
    needsApi: (input: Parameters<RocketReachStage['needsApi']>[0]) => (input.contacts?.length ?? 0) > 0,
    async run(input: Parameters<RocketReachStage['run']>[0]) {
      if (lookup.needsApi(input)) lookup.calls++;
      return lookup.needsApi(input) ? { status: 'completed' as const, contacts: [] } : { status: 'skipped' as const, contacts: [] };
    },
  };
  return lookup;
}

describe('skip rules: a step settled locally spends no job', () => {
  it('settles the contact lookup with the intent when no lookup is needed, on both drivers', async () => {
    const lookup = countingLookup();
    const h = createHarness(CATALOG, localServices({ rocketreach: lookup }));
    const queued = await h.sendQueued(h.thread(), 'Draft a press release about our results');
    await h.transport.idle();
    const inline = await h.sendInline(h.thread(), 'Draft a press release about our results');
    await inline.done;
    for (const id of [queued, inline.id]) {
      const document = await h.document(id);
      expect(document.status).toBe('completed');
      expect(document.results.rocketreach).toEqual({ status: 'skipped', contacts: [] });
    }
    expect(h.transport.added()).not.toContain(`${queued}.rocketreach`);
    expect(lookup.calls).toBe(0);
  });

  it('sends the lookup as a job of its own when it needs the API', async () => {
    const lookup = countingLookup();
    const h = createHarness(CATALOG, localServices({ rocketreach: lookup }));
    const threadId = h.thread();
    const id = await h.sendQueued(threadId, 'Find the email of Sarah Chen');
    await h.transport.idle();
    // Without contacts asked for, the lookup settled at once; with them (below) it is a job.
    expect(h.transport.added()).not.toContain(`${id}.rocketreach`);
    const runs = h.runs;
    const withContacts = randomUUID();
    await runs.create({ id: withContacts, orgId: h.orgId, threadId, userId: randomUUID(), source: 'comprehensive', driver: 'queue', content: 'Who is she?', options: { contacts: [{ name: 'Sarah Chen' }] }, stages: ['intent', 'security', 'rag', 'rocketreach', 'openai'] });
    await h.transport.enqueue(withContacts, h.orgId, ['intent'], { fanout: ['security', 'rag'] });
    await h.transport.idle();
    expect(h.transport.added()).toContain(`${withContacts}.rocketreach`);
    expect((await h.document(withContacts)).results.rocketreach).toEqual({ status: 'completed', contacts: [] });
    expect(lookup.calls).toBe(1);
  });

  it('waits for the security verdict before a lookup that needs the API, and calls nothing for a blocked message', async () => {
    const lookup = countingLookup();
    const h = createHarness(CATALOG, localServices({ rocketreach: lookup }));
    const id = randomUUID();
    await h.runs.create({ id, orgId: h.orgId, threadId: h.thread(), userId: randomUUID(), source: 'comprehensive', driver: 'queue', content: 'Who is she? my card is 4111 1111 1111 1111', options: { contacts: [{ name: 'Sarah Chen' }] }, stages: ['intent', 'security', 'rag', 'rocketreach', 'openai'] });
    await h.transport.enqueue(id, h.orgId, ['intent'], { fanout: ['security', 'rag'] });
    await h.transport.idle();
    expect((await h.document(id)).results.rocketreach).toEqual({ status: 'skipped', contacts: [], reason: 'message_blocked' });
    // Settled once the verdict was in: no job, no call.
    expect(h.transport.added()).not.toContain(`${id}.rocketreach`);
    expect(lookup.calls).toBe(0);
  });

  it('skips the lookup when contact enrichment is switched off, whatever was asked', async () => {
    const lookup = countingLookup();
    const h = createHarness(CATALOG, localServices({ rocketreach: lookup }));
    const id = randomUUID();
    await h.runs.create({ id, orgId: h.orgId, threadId: h.thread(), userId: randomUUID(), source: 'comprehensive', driver: 'queue', content: 'Find Sarah Chen', options: { includeContactEnrichment: false, contacts: [{ name: 'Sarah Chen' }] }, stages: ['intent', 'security', 'rag', 'rocketreach', 'openai'] });
    await h.transport.enqueue(id, h.orgId, ['intent'], { fanout: ['security', 'rag'] });
    await h.transport.idle();
    expect((await h.document(id)).results.rocketreach).toEqual({ status: 'skipped', contacts: [] });
    expect(h.transport.added()).not.toContain(`${id}.rocketreach`);
    expect(lookup.calls).toBe(0);
  });
});
