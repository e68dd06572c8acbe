import { describe, expect, it } from 'vitest';
import { stageOrder } from '../../../src/engine/dag.js';
import { defineStage } from '../../../src/engine/stage.js';
import { catalogWithEcho } from './echo-catalog.js';
import { createHarness } from './harness.js';

describe('a sixth stage, through both drivers', () => {
  it('runs after its dependency and before the LLM, which sees its result', async () => {
    const seen: unknown[] = [];
    const catalog = catalogWithEcho(seen);
    expect(stageOrder(catalog)).toEqual(['intent', 'security', 'rag', 'rocketreach', 'echo', 'openai']);
    const h = createHarness(catalog);

    const inline = await h.sendInline(h.thread(), 'hello from the blocking endpoint');
    await inline.done;
    const queued = await h.sendQueued(h.thread(), 'hello from the queues');
    await h.transport.idle();

    for (const [id, content] of [[inline.id, 'hello from the blocking endpoint'], [queued, 'hello from the queues']] as const) {
      const document = await h.document(id);
      expect(document.status).toBe('completed');
      expect(document.results.echo).toEqual({ echoed: content.toUpperCase(), length: content.length });
      expect(document.steps.map((s) => s.stage)).toEqual(['intent', 'security', 'rag', 'rocketreach', 'echo', 'openai']);
    }
    expect(seen).toEqual([
      { echoed: 'HELLO FROM THE BLOCKING ENDPOINT', length: 32 },
      { echoed: 'HELLO FROM THE QUEUES', length: 21 },
    ]);
    expect(h.transport.added()).toContain(`${queued}.echo`);
    expect(h.errors).toEqual([]);
  });

  it('retries the sixth stage with its own policy, and the run goes on without it after a final failure', async () => {
    let calls = 0;
    const catalog = {
      ...catalogWithEcho([]),
      echo: defineStage<'echo', { echoed: string }>({
        name: 'echo', queue: 'echo-processing', dependsOn: ['security'], attempts: 2, backoff: { baseDelayMs: 1 }, concurrency: { default: 1, max: 1 }, optional: true, callsOut: false,
        handle: async () => {
          calls++;
          throw new Error('echo is down');
        },
      }),
    };
    const h = createHarness(catalog);
    const inline = await h.sendInline(h.thread(), 'first');
    await inline.done;
    const queued = await h.sendQueued(h.thread(), 'second');
    await h.transport.idle();
    for (const id of [inline.id, queued]) {
      const document = await h.document(id);
      expect(document.status).toBe('completed');
      expect(document.steps.find((s) => s.stage === 'echo')).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'internal_error' } });
    }
    expect(calls).toBe(4);
  });
});
