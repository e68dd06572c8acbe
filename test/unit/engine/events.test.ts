import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/engine/catalog.js';
import { StageError } from '../../../src/domain/errors.js';
import { createLlmStage } from '../../../src/domain/stages/llm/llm.stage.js';
import type { LlmProvider } from '../../../src/domain/stages/llm/llm.provider.js';
import { createOfflineProvider } from '../../../src/domain/stages/llm/offline.provider.js';
import type { RunEvent, RunEventBody, ThreadCursor, ThreadRunEvent } from '../../../src/engine/ports/run-events.js';
import { formatThreadCursor, parseThreadCursor } from '../../../src/engine/events/thread-cursor.js';
import { createEventEmitter } from '../../../src/engine/events/emitter.js';
import { createMemoryRunEvents } from '../../fakes/memory-run-events.js';
import { createHarness, localServices, until } from './harness.js';

const ended = (events: RunEvent[]) => events.at(-1)?.type === 'end';
const text = (events: readonly RunEvent[]) => {
  let reply = '';
  for (const e of events) {
    if (e.type === 'reset') reply = '';
    if (e.type === 'token') reply += e.text;
  }
  return reply;
};
const shape = (events: RunEvent[]) => events.map((e) => (e.type === 'step' ? `${e.stage}:${e.status}` : e.type === 'run' ? `run:${e.status}` : e.type));

/** An LLM provider that streams a reply, failing part-way on its first call. */
function flakyStreamer(reply: string): LlmProvider & { calls: number } {
  const provider = {
    name: 'flaky',
    calls: 0,
    async complete(_request: unknown, _signal?: AbortSignal, onDelta?: (text: string) => void) {
      provider.calls++;
      const words = reply.split(/(?<= )/);
      for (const [i, word] of words.entries()) {
        if (provider.calls === 1 && i === 3) throw new StageError('connection_error', 'the stream broke', { permanent: false });
        onDelta?.(word);
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { choices: [{ index: 0, message: { role: 'assistant' as const, content: reply }, finish_reason: 'stop' }], model: 'm', usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, provider: 'flaky' };
    },
  };
  return provider;
}

describe('the event grammar, on both drivers', () => {
  for (const driver of ['queue', 'inline'] as const) {
    it(`${driver}: accepted, started before completed for every stage, tokens adding up to the reply, the final status, end`, async () => {
      const h = createHarness(CATALOG);
      const threadId = h.thread();
      const runId = driver === 'queue' ? await h.sendQueued(threadId, 'Draft a press release about our results') : (await h.sendInline(threadId, 'Draft a press release about our results')).id;
      await until(() => ended(h.events.events(runId)), 'the run to end');
      const events = h.events.events(runId);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const names = shape(events);
      expect(names[0]).toBe('run:accepted');
      expect(names.slice(-2)).toEqual(['run:completed', 'end']);
      for (const stage of Object.keys(CATALOG)) {
        expect(names.indexOf(`${stage}:started`), stage).toBeGreaterThan(0);
        expect(names.indexOf(`${stage}:completed`), stage).toBeGreaterThan(names.indexOf(`${stage}:started`));
      }
      // The LLM starts after every other stage has completed, and its tokens come between.
      const llmStart = names.indexOf('openai:started');
      for (const stage of ['intent', 'security', 'rag', 'rocketreach']) expect(names.indexOf(`${stage}:completed`)).toBeLessThan(llmStart);
      const tokenAt = names.indexOf('token');
      expect(tokenAt).toBeGreaterThan(llmStart);
      expect(names.lastIndexOf('token')).toBeLessThan(names.indexOf('openai:completed'));
      expect(text(events)).toBe((await h.runs.assistantMessage(runId))?.content);
      expect(events.filter((e) => e.type === 'token').length).toBeGreaterThan(0);
      expect(events.at(-2)).toMatchObject({ type: 'run', status: 'completed', messageId: (await h.runs.assistantMessage(runId))?.id });
    });
  }

  it('the step statements write the step events: a run whose reply is not streamed appends nothing of its own', async () => {
    const h = createHarness(CATALOG);
    const appended: string[] = [];
    const append = h.events.append;
    h.events.append = (runId, bodies) => {
      appended.push(...bodies.map((e) => e.type));
      return append(runId, bodies);
    };
    const runId = await h.sendQueued(h.thread(), 'Draft a press release about our results');
    await until(() => ended(h.events.events(runId)), 'the run to end');
    const names = shape(h.events.events(runId));
    expect(appended).toEqual([]);
    for (const stage of Object.keys(CATALOG)) expect(names.filter((n) => n === `${stage}:started`), stage).toHaveLength(1);
    // The offline provider does not stream: its reply is one token event, written with the reply.
    expect(names.slice(-5)).toEqual(['openai:started', 'token', 'openai:completed', 'run:completed', 'end']);
  });

  it('a retry after a partial stream: retrying with its delay, then reset before the new text', async () => {
    const reply = 'One two three four five six seven.';
    const offline = createOfflineProvider();
    const provider = flakyStreamer(reply);
    const h = createHarness(CATALOG, localServices({ llm: createLlmStage({ provider, offline }) }));
    const { id, done } = await h.sendInline(h.thread(), 'Write a post');
    await done;
    await until(() => ended(h.events.events(id)), 'the run to end');
    const events = h.events.events(id);
    const names = shape(events);
    const retrying = events.find((e) => e.type === 'step' && e.status === 'retrying');
    expect(retrying).toMatchObject({ stage: 'openai', attempt: 1, delayMs: expect.any(Number), error: { code: 'connection_error' } });
    const resetAt = names.indexOf('reset');
    expect(names.indexOf('token')).toBeLessThan(names.indexOf('openai:retrying'));
    expect(resetAt).toBeGreaterThan(names.indexOf('openai:retrying'));
    expect(events[resetAt]).toMatchObject({ type: 'reset', stage: 'openai', attempt: 2 });
    expect(text(events)).toBe(reply);
    expect(provider.calls).toBe(2);
  });

  it('a required stage that fails for good: failed, then the run failed, then end', async () => {
    const failing: LlmProvider = { name: 'failing', complete: () => Promise.reject(new StageError('invalid_api_key', 'rejected', { permanent: true })) };
    const h = createHarness(CATALOG, localServices({ llm: createLlmStage({ provider: failing, offline: createOfflineProvider() }) }));
    const { id, done } = await h.sendInline(h.thread(), 'Hello');
    await done;
    await until(() => ended(h.events.events(id)), 'the run to end');
    const names = shape(h.events.events(id));
    expect(names.slice(-3)).toEqual(['openai:failed', 'run:failed', 'end']);
    expect(h.events.events(id).at(-2)).toMatchObject({ error: { code: 'invalid_api_key' } });
  });

  it('a cancelled run ends with cancelled and end, once', async () => {
    const h = createHarness(CATALOG);
    const id = await h.sendQueued(h.thread(), 'Hello');
    expect(await h.engine.cancel(id, 'stop', [])).toBe(true);
    expect(await h.engine.cancel(id, 'stop', [])).toBe(false);
    await h.transport.idle();
    const names = shape(h.events.events(id));
    expect(names.slice(-2)).toEqual(['run:cancelled', 'end']);
    expect(names.filter((n) => n === 'end')).toHaveLength(1);
  });
});

describe('subscriptions', () => {
  function seeded(events = createMemoryRunEvents()) {
    events.begin({ runId: 'r1', orgId: 'o', threadId: 'th', runSeq: 10 });
    return events;
  }

  it('deliver the stored events after the cursor, then the new ones, each once and in order', async () => {
    const events = seeded();
    await events.append('r1', [{ type: 'step', stage: 'intent', status: 'started', attempt: 1 }]);
    const got: number[] = [];
    const unsubscribe = events.subscribe({ orgId: 'o', runId: 'r1' }, 1, (e) => got.push(e.seq));
    await events.append('r1', [{ type: 'token', stage: 'openai', attempt: 1, text: 'a' }]);
    await events.append('r1', [{ type: 'token', stage: 'openai', attempt: 1, text: 'b' }]);
    await until(() => got.length === 3, 'three events');
    expect(got).toEqual([2, 3, 4]);
    unsubscribe();
    expect(events.subscriptions()).toBe(0);
  });

  it('catch up by reading when notifications were lost (a gap), and on resync', async () => {
    const events = seeded();
    const got: number[] = [];
    events.subscribe({ orgId: 'o', runId: 'r1' }, 0, (e) => got.push(e.seq));
    await until(() => got.length === 1, 'the stored event');
    events.dropNotices(true);
    await events.append('r1', [{ type: 'token', stage: 'openai', attempt: 1, text: 'lost' }]);
    events.dropNotices(false);
    await events.append('r1', [{ type: 'token', stage: 'openai', attempt: 1, text: 'seen' }]);
    await until(() => got.length === 3, 'the gap filled');
    expect(got).toEqual([1, 2, 3]);
    events.dropNotices(true);
    events.close('r1', [{ type: 'run', status: 'completed' }, { type: 'end', status: 'completed' }]);
    events.resync();
    await until(() => got.length === 5, 'the closing events');
    expect(got).toEqual([1, 2, 3, 4, 5]);
  });

  it('are scoped to the organization', async () => {
    const events = seeded();
    const got: RunEvent[] = [];
    events.subscribe({ orgId: 'another', runId: 'r1' }, 0, (e) => got.push(e));
    await events.append('r1', [{ type: 'token', stage: 'openai', attempt: 1, text: 'x' }]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(await events.read({ orgId: 'another', runId: 'r1' }, 0)).toEqual([]);
    expect(got.filter((e) => e.runId === 'r1' && e.seq === 1)).toEqual([]);
  });

  it('follow every run of a thread with a cursor that resumes exactly, and raise the floor past ended runs', async () => {
    const events = seeded();
    const received: Array<[ThreadRunEvent, ThreadCursor]> = [];
    const start = await events.threadStart({ orgId: 'o', threadId: 'th' });
    expect(start).toEqual({ floor: 9, runs: {} });
    const unsubscribe = events.subscribe({ orgId: 'o', threadId: 'th' }, start, (e, c) => received.push([e, c]));
    events.begin({ runId: 'r2', orgId: 'o', threadId: 'th', runSeq: 12 });
    await events.append('r2', [{ type: 'step', stage: 'intent', status: 'started', attempt: 1 }]);
    await events.append('r1', [{ type: 'token', stage: 'openai', attempt: 1, text: 'late' }]);
    await until(() => received.length === 4, 'four events');
    const cursorText = formatThreadCursor(received.at(-1)![1]);
    expect(parseThreadCursor(cursorText)).toEqual(received.at(-1)![1]);
    unsubscribe();

    events.close('r1', [{ type: 'run', status: 'completed' }, { type: 'end', status: 'completed' }]);
    await events.append('r2', [{ type: 'token', stage: 'openai', attempt: 1, text: 'more' }]);
    const resumed: Array<[ThreadRunEvent, ThreadCursor]> = [];
    events.subscribe({ orgId: 'o', threadId: 'th' }, parseThreadCursor(cursorText)!, (e, c) => resumed.push([e, c]));
    await until(() => resumed.length === 3, 'the rest');
    expect(resumed.map(([e]) => `${e.runId}:${e.seq}`)).toEqual(['r1:3', 'r1:4', 'r2:3']);
    await until(() => events.subscriptions() === 1, 'one subscription');
    await events.append('r2', [{ type: 'token', stage: 'openai', attempt: 1, text: '!' }]);
    await until(() => resumed.length === 4, 'one more');
    expect(resumed.at(-1)![1].floor).toBe(10);
    expect(formatThreadCursor(resumed.at(-1)![1])).toBe('t10,12:4');
  });

  it('thread cursors: malformed ones are refused', () => {
    for (const bad of ['', '12', 't', 'tx', 't5,3:1', 't5,6:1,6:2', 't5,6:', 't5,6:1:2', `t1${',2:1'.repeat(70)}`, 't01']) {
      expect(parseThreadCursor(bad), bad).toBeUndefined();
    }
    expect(parseThreadCursor('t0')).toEqual({ floor: 0, runs: {} });
  });
});

describe('the emitter', () => {
  it('merges a step’s consecutive tokens and appends at most once per period, the first at once', async () => {
    const events = seeded();
    const appends: number[] = [];
    const port = {
      ...events,
      append(runId: string, bodies: never[]) {
        appends.push(bodies.length);
        return events.append(runId, bodies);
      },
    };
    const emitter = createEventEmitter(port, { flushMs: 10_000 });
    const sink = emitter.tokens('r1', 'openai', 1);
    sink.token('Hel');
    await until(() => appends.length === 1, 'the first append');
    sink.token('lo');
    sink.token(' world');
    await emitter.flush();
    expect(appends).toEqual([1, 1]);
    expect(text(events.events('r1'))).toBe('Hello world');
  });

  it('hands a run’s buffered events to the caller once the appends sent before are stored, and appends them no more', async () => {
    const events = seeded();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const appends: number[] = [];
    const port = {
      ...events,
      async append(runId: string, bodies: never[]) {
        appends.push(bodies.length);
        await held;
        return events.append(runId, bodies);
      },
    };
    const emitter = createEventEmitter(port, { flushMs: 10_000 });
    const sink = emitter.tokens('r1', 'openai', 1);
    sink.token('Hel');
    await until(() => appends.length === 1, 'the first append');
    sink.token('lo');
    let taken: RunEventBody[] | undefined;
    const taking = emitter.take('r1').then((bodies) => (taken = bodies));
    await new Promise((resolve) => setImmediate(resolve));
    expect(taken).toBeUndefined();
    release();
    await taking;
    expect(taken).toEqual([{ type: 'token', stage: 'openai', attempt: 1, text: 'lo' }]);
    expect(text(events.events('r1'))).toBe('Hel');
    await emitter.flush();
    expect(appends).toEqual([1]);
  });

  function seeded() {
    const events = createMemoryRunEvents();
    events.begin({ runId: 'r1', orgId: 'o', threadId: 'th', runSeq: 1 });
    return events;
  }
});
