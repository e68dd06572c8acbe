import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/engine/catalog.js';
import { StageError } from '../../../src/domain/errors.js';
import type { LlmStage } from '../../../src/domain/stages/llm/llm.stage.js';
import { createHarness, localServices, until } from './harness.js';

/**
 * The LLM of the message "first" is held until the test lets it go (or its job is aborted), so
 * that the thread's second message is waiting for its turn when the first run ends.
 */
function heldLlm(outcome: 'reply' | 'fail') {
  const real = localServices().llm;
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let entered = false;
  const llm: LlmStage = {
    async run(input, signal) {
      if (input.rawContent !== 'first') return real.run(input, signal);
      entered = true;
      await new Promise<void>((resolve, reject) => {
        signal?.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true });
        void released.then(resolve);
      });
      if (outcome === 'fail') throw new StageError('provider_rejected', 'the provider refused the request', { permanent: true });
      return real.run(input, signal);
    },
  };
  return { llm, release, entered: () => entered };
}

async function twoInOneThread(outcome: 'reply' | 'fail', firstDriver: 'queue' | 'inline' = 'queue') {
  const held = heldLlm(outcome);
  const h = createHarness(CATALOG, localServices({ llm: held.llm }));
  const threadId = h.thread();
  const controller = new AbortController();
  const first = firstDriver === 'queue' ? { id: await h.sendQueued(threadId, 'first'), done: undefined } : await h.sendInline(threadId, 'first', controller.signal);
  await until(held.entered, 'the first reply to be under way');
  const second = await h.sendQueued(threadId, 'second');
  // Every step of the second run but its reply is done; the reply waits for the first run.
  await until(async () => (await h.document(second)).steps.filter((s) => s.status === 'completed').length === 4, 'the second run to wait for its turn');
  expect((await h.document(second)).steps.find((s) => s.stage === 'openai')?.status).toBe('pending');
  expect(h.transport.added()).not.toContain(`${second}.openai`);
  return { h, held, first: first.id, firstDone: first.done, second, abort: (reason: string) => controller.abort(reason) };
}

describe('thread order: every end of a run moves the thread on', () => {
  it('a reply lets the next message of the thread go', async () => {
    const { h, held, first, second } = await twoInOneThread('reply');
    held.release();
    await h.transport.idle();
    expect((await h.document(first)).status).toBe('completed');
    expect((await h.document(second)).status).toBe('completed');
    expect(h.errors).toEqual([]);
  });

  it('a final failure lets the next message of the thread go', async () => {
    const { h, held, first, second } = await twoInOneThread('fail');
    held.release();
    await h.transport.idle();
    expect((await h.document(first)).status).toBe('failed');
    expect((await h.document(second)).status).toBe('completed');
  });

  it('a cancel lets the next message go at once, without waiting for a reconciler', async () => {
    const { h, first, second } = await twoInOneThread('reply');
    const jobs = (await h.runs.steps(first)).filter((s) => s.status !== 'completed').map((s) => ({ jobId: s.jobId, stage: s.stage }));
    expect(await h.engine.cancel(first, 'not needed', jobs)).toBe(true);
    await h.transport.idle();
    expect((await h.document(first)).status).toBe('cancelled');
    expect((await h.document(second)).status).toBe('completed');
    // A second cancel finds the run ended.
    expect(await h.engine.cancel(first, 'again', [])).toBe(false);
  });

  it('an in-process run aborted by its caller lets the queued next message go', async () => {
    const { h, firstDone, first, second, abort } = await twoInOneThread('reply', 'inline');
    abort('the client went away');
    await firstDone;
    await h.transport.idle();
    expect((await h.document(first)).status).toBe('cancelled');
    expect((await h.document(second)).status).toBe('completed');
  });

  it('replies in message order when both are driven in-process', async () => {
    const held = heldLlm('reply');
    const h = createHarness(CATALOG, localServices({ llm: held.llm }));
    const threadId = h.thread();
    const first = await h.sendInline(threadId, 'first');
    await until(held.entered, 'the first reply to be under way');
    const second = await h.sendInline(threadId, 'second');
    await until(async () => (await h.document(second.id)).steps.filter((s) => s.status === 'completed').length === 4, 'the second run to wait for its turn');
    expect((await h.document(second.id)).status).toBe('partial');
    held.release();
    await Promise.all([first.done, second.done]);
    const replies = await Promise.all([first.id, second.id].map((id) => h.runs.getById(id)));
    expect(replies.map((run) => run?.status)).toEqual(['completed', 'completed']);
    expect(replies[0]!.finishedAt!.getTime()).toBeLessThanOrEqual(replies[1]!.finishedAt!.getTime());
  });
});
