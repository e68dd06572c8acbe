import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/engine/catalog.js';
import { classifySecurity } from '../../../src/domain/stages/security/security.service.js';
import { createHarness, localServices } from './harness.js';

describe("a run's entry job", () => {
  it('runs the local root stages beside its own: two jobs per message, every stage completed', async () => {
    const h = createHarness(CATALOG);
    const id = await h.sendQueued(h.thread(), 'Draft a press release about our results');
    await h.transport.idle();
    const document = await h.document(id);
    expect(document.status).toBe('completed');
    expect(document.steps.map((s) => [s.stage, s.status, s.attempts])).toEqual([
      ['intent', 'completed', 1],
      ['security', 'completed', 1],
      ['rag', 'completed', 1],
      ['rocketreach', 'completed', 1],
      ['openai', 'completed', 1],
    ]);
    expect(h.transport.added()).toEqual([`${id}.intent`, `${id}.openai`]);
  });

  it('gives a local stage that failed beside it a job of its own, counting the attempt made', async () => {
    let failures = 0;
    const h = createHarness(
      CATALOG,
      localServices({
        classifySecurity: (text) => {
          if (failures < 2) {
            failures++;
            throw new Error('detector unavailable');
          }
          return classifySecurity(text);
        },
      }),
    );
    const id = await h.sendQueued(h.thread(), 'Draft a press release about our results');
    await h.transport.idle();
    const document = await h.document(id);
    expect(document.status).toBe('completed');
    // Its first attempt in the entry job, the second and third in its own job: three in all, as its stage allows.
    expect(document.steps.find((s) => s.stage === 'security')).toMatchObject({ status: 'completed', attempts: 3 });
    expect(h.transport.added()).toEqual([`${id}.intent`, `${id}.security`, `${id}.openai`]);
  });

  it('fails such a stage for good after its stage attempts, the first one in the entry job', async () => {
    const h = createHarness(
      CATALOG,
      localServices({
        classifySecurity: () => {
          throw new Error('detector unavailable');
        },
      }),
    );
    const id = await h.sendQueued(h.thread(), 'Draft a press release about our results');
    await h.transport.idle();
    const document = await h.document(id);
    // Security is optional: the reply is made without it, by the local guard (fail closed).
    expect(document.status).toBe('completed');
    expect(document.steps.find((s) => s.stage === 'security')).toMatchObject({ status: 'failed', attempts: CATALOG.security.attempts });
  });
});
