import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/engine/catalog.js';
import { readyStages } from '../../../src/engine/dag.js';
import { createEngine, pendingStates } from '../../../src/engine/engine.js';
import type { RunEndedBus } from '../../../src/engine/ports/run-ended-bus.js';
import { createTakeover } from '../../../src/engine/takeover.js';
import type { LlmStage } from '../../../src/domain/stages/llm/llm.stage.js';
import { createMemoryRunStore } from '../../fakes/memory-run-store.js';
import { createMemoryTransport } from '../../fakes/memory-transport.js';
import { localServices, until } from './harness.js';

const AFTER_MS = 1_000;
const LEASE_MS = 10_000;
const silent = { info: () => undefined, warn: () => undefined };

/** An LLM that counts its calls per message and can hold the ones the test names until released. */
function countingLlm() {
  const real = localServices().llm;
  const calls = new Map<string, number>();
  const held = new Set<string>();
  const waiting = new Map<string, () => void>();
  const llm: LlmStage = {
    async run(input, signal) {
      calls.set(input.rawContent, (calls.get(input.rawContent) ?? 0) + 1);
      if (held.has(input.rawContent)) await new Promise<void>((resolve) => waiting.set(input.rawContent, resolve));
      return real.run(input, signal);
    },
  };
  return {
    llm,
    calls,
    hold: (content: string) => held.add(content),
    release(content: string) {
      held.delete(content);
      waiting.get(content)?.();
    },
    entered: (content: string) => waiting.has(content),
  };
}

/**
 * One PostgreSQL (the memory store) and one set of queues (the memory transport) shared by
 * "processes": each an engine of its own with its takeover, on a clock the test moves.
 */
function system() {
  let clock = 1_000_000;
  const now = () => clock;
  const runs = createMemoryRunStore(CATALOG, { now });
  const transport = createMemoryTransport<keyof typeof CATALOG & string>();
  const llm = countingLlm();
  const replies: string[] = [];
  const completeWithReply = runs.completeWithReply;
  runs.completeWithReply = async (runId, ...rest) => {
    const stored = await completeWithReply(runId, ...rest);
    if (stored) replies.push(runId);
    return stored;
  };
  const orgId = randomUUID();
  const included = (Object.keys(CATALOG) as Array<keyof typeof CATALOG>).filter((stage) => CATALOG[stage].includedWhen?.({}) ?? true);

  function process(name: string, bus?: RunEndedBus) {
    const errors: unknown[] = [];
    const engine = createEngine({
      catalog: CATALOG,
      runs,
      transport,
      services: localServices({ llm: llm.llm }),
      settings: { historyTokenBudget: 3_000 },
      onError: (error) => errors.push(error),
      inline: { maxBackoffMs: 5, ...(bus ? { slowTurnPollMs: 60_000 } : {}) },
      ...(bus ? { bus } : {}),
    });
    const takeover = createTakeover({ engine, runs, transport, owner: name, afterMs: AFTER_MS, leaseMs: LEASE_MS, logger: silent, now });
    return { name, engine, takeover, errors };
  }

  return {
    runs,
    transport,
    llm,
    replies,
    process,
    advance: (ms: number) => (clock += ms),
    thread: () => runs.addThread(orgId),
    /** Accepted for the queues: the run and its entry job, as the chat service does. */
    async sendQueued(threadId: string, content: string): Promise<string> {
      const id = randomUUID();
      await runs.create({ id, orgId, threadId, userId: randomUUID(), source: 'queued', driver: 'queue', content, stages: included });
      const [entry, ...others] = readyStages(CATALOG, pendingStates(included));
      await transport.enqueue(id, orgId, [entry!], { fanout: others });
      return id;
    },
    async status(runId: string) {
      return (await runs.getById(runId))?.status;
    },
  };
}

/**
 * Runs in flight when the queues are lost: accepted with their entry job added, which no worker
 * took yet (no consumer is attached), in `threads` threads of `perThread` messages.
 */
async function inFlight(s: ReturnType<typeof system>, threads: number, perThread: number) {
  const byThread: string[][] = [];
  const contents = new Map<string, string>();
  for (let t = 0; t < threads; t++) {
    const threadId = s.thread();
    const ids: string[] = [];
    for (let m = 0; m < perThread; m++) {
      const content = `thread ${t} message ${m}`;
      const id = await s.sendQueued(threadId, content);
      contents.set(id, content);
      ids.push(id);
    }
    byThread.push(ids);
  }
  s.transport.setAvailable(false);
  return { byThread, all: byThread.flat(), contents };
}

describe('transport-loss takeover', () => {
  it('takes over the open runs once the queues are gone for afterMs, in thread order, one reply each', async () => {
    const s = system();
    const a = s.process('process-a');
    const { byThread, all } = await inFlight(s, 4, 3);
    expect(await a.takeover.tick()).toBe(0);
    s.advance(AFTER_MS - 1);
    expect(await a.takeover.tick()).toBe(0);
    s.advance(1);
    expect(await a.takeover.tick()).toBe(all.length);
    await until(async () => (await Promise.all(all.map((id) => s.status(id)))).every((status) => status === 'completed'), 'every run to complete');
    // One reply per run, and within each thread in message order.
    expect([...s.replies].sort()).toEqual([...all].sort());
    for (const ids of byThread) expect(s.replies.filter((id) => ids.includes(id))).toEqual(ids);
    expect([...s.llm.calls.values()].every((n) => n === 1)).toBe(true);
    await a.takeover.released();
    expect(a.takeover.held()).toEqual([]);
    expect(all.every((id) => s.runs.leaseOf(id) === undefined)).toBe(true);
    expect(a.errors).toEqual([]);
  });

  it('leftover jobs delivered when the queues return are skipped: no second reply, no step run twice', async () => {
    const s = system();
    const a = s.process('process-a');
    const { all, contents } = await inFlight(s, 2, 2);
    // The first run of each thread is held in its LLM call while the queues come back.
    const held = all.filter((_, i) => i % 2 === 0).map((id) => contents.get(id)!);
    for (const content of held) s.llm.hold(content);
    await a.takeover.tick();
    s.advance(AFTER_MS);
    expect(await a.takeover.tick()).toBe(all.length);
    s.advance(AFTER_MS);
    expect(await a.takeover.tick()).toBe(0);
    await until(() => held.every((content) => s.llm.entered(content)), 'the held LLM calls to start');
    s.transport.consumeWith(a.engine.queued);
    s.transport.setAvailable(true);
    await s.transport.idle();
    // Every leftover job was answered as done before, without running its step.
    expect(s.transport.outcomes().length).toBeGreaterThan(0);
    expect(s.transport.outcomes().every((o) => o.verdict === 'already_finished')).toBe(true);
    for (const content of held) s.llm.release(content);
    await until(async () => (await Promise.all(all.map((id) => s.status(id)))).every((status) => status === 'completed'), 'every run to complete');
    await s.transport.idle();
    expect([...s.replies].sort()).toEqual([...all].sort());
    expect([...s.llm.calls.values()].every((n) => n === 1)).toBe(true);
    // New work goes to the queues again.
    expect(await a.takeover.tick()).toBe(0);
    const fresh = await s.sendQueued(s.thread(), 'after the queues came back');
    await s.transport.idle();
    expect(await s.status(fresh)).toBe('completed');
    expect((await s.runs.getById(fresh))?.driver).toBe('queue');
  });

  it('a run taken over with its reply ready still waits for the earlier run of its thread', async () => {
    const s = system();
    const a = s.process('process-a');
    s.transport.consumeWith(a.engine.queued);
    const threadId = s.thread();
    s.llm.hold('first');
    const first = await s.sendQueued(threadId, 'first');
    await until(() => s.llm.entered('first'), 'the first reply to be under way');
    const second = await s.sendQueued(threadId, 'second');
    await until(async () => (await s.runs.steps(second)).filter((step) => step.status === 'completed').length === 4, 'the second run to wait for its turn');
    // The queues go with the first reply under way and the second one ready.
    s.transport.setAvailable(false);
    await a.takeover.tick();
    s.advance(AFTER_MS);
    expect(await a.takeover.tick()).toBe(2);
    // The second reply asks for its turn and is told to wait, more than once, while the first is held.
    let asked = 0;
    const hasEarlierOpenRun = s.runs.hasEarlierOpenRun;
    s.runs.hasEarlierOpenRun = async (...args) => {
      asked++;
      return hasEarlierOpenRun(...args);
    };
    await until(() => asked >= 3, 'the second reply to ask for its turn', 5_000_000);
    expect(s.replies).toEqual([]);
    s.llm.release('first');
    await until(async () => (await s.status(second)) === 'completed', 'the second run to complete');
    expect(s.replies).toEqual([first, second]);
  });

  it('a job of a run another process holds runs no step and stores nothing', async () => {
    const s = system();
    const a = s.process('process-a');
    const id = await s.sendQueued(s.thread(), 'held elsewhere');
    // Another process took the run over and is (as far as this one can tell) driving it.
    expect((await s.runs.takeOver('process-b', LEASE_MS, 10)).map((r) => r.id)).toEqual([id]);
    s.transport.consumeWith(a.engine.queued);
    s.transport.setAvailable(true);
    await s.transport.idle();
    // The entry job (and the jobs it fanned out to) ran nothing.
    expect(s.transport.outcomes().map((o) => o.jobId)).toContain(`${id}.intent`);
    expect(s.transport.outcomes().every((o) => o.verdict === 'already_finished')).toBe(true);
    expect(s.runs.fenced()).toBeGreaterThan(0);
    expect((await s.runs.steps(id)).every((step) => step.status === 'pending')).toBe(true);
    expect(s.llm.calls.size).toBe(0);
  });

  it('several processes noticing at once take disjoint runs, each driven once', async () => {
    const s = system();
    const processes = [s.process('process-a'), s.process('process-b'), s.process('process-c')];
    const { byThread, all } = await inFlight(s, 5, 2);
    await Promise.all(processes.map((p) => p.takeover.tick()));
    s.advance(AFTER_MS);
    const taken = await Promise.all(processes.map((p) => p.takeover.tick()));
    expect(taken.reduce((sum, n) => sum + n, 0)).toBe(all.length);
    const held = processes.flatMap((p) => p.takeover.held());
    expect(new Set(held).size).toBe(held.length);
    await until(async () => (await Promise.all(all.map((id) => s.status(id)))).every((status) => status === 'completed'), 'every run to complete');
    expect([...s.replies].sort()).toEqual([...all].sort());
    for (const ids of byThread) expect(s.replies.filter((id) => ids.includes(id))).toEqual(ids);
    expect([...s.llm.calls.values()].every((n) => n === 1)).toBe(true);
  });

  it("renews the leases of the runs it drives, and takes over a dead process's runs once their lease expired", async () => {
    const s = system();
    const { all, contents } = await inFlight(s, 1, 1);
    const [id] = all;
    // Process A takes the run and dies while driving it (nothing of it runs any more).
    expect((await s.runs.takeOver('dead-process', LEASE_MS, 10)).length).toBe(1);
    const b = s.process('process-b');
    s.advance(AFTER_MS);
    expect(await b.takeover.tick()).toBe(0);
    s.advance(LEASE_MS);
    s.llm.hold(contents.get(id!)!);
    expect(await b.takeover.tick()).toBe(1);
    expect(s.runs.leaseOf(id!)?.owner).toBe('process-b');
    await until(() => s.llm.entered(contents.get(id!)!), 'the LLM call to start');
    // Held while driven: renewed before it would expire.
    const before = s.runs.leaseOf(id!)!.expiresAt;
    s.advance(LEASE_MS / 2);
    await b.takeover.tick();
    expect(s.runs.leaseOf(id!)!.expiresAt).toBeGreaterThan(before);
    s.llm.release(contents.get(id!)!);
    await until(async () => (await s.status(id!)) === 'completed', 'the run to complete');
    await b.takeover.released();
    expect(s.runs.leaseOf(id!)).toBeUndefined();
    expect(s.replies).toEqual([id]);
  });
});

describe('the run-ended bus', () => {
  it("wakes a reply waiting for its turn when the thread's earlier run ends in another process", async () => {
    const s = system();
    const listeners = new Map<string, Set<() => void>>();
    const bus: RunEndedBus = {
      onRunEnded(threadId, listener) {
        const set = listeners.get(threadId) ?? new Set();
        set.add(listener);
        listeners.set(threadId, set);
        return () => set.delete(listener);
      },
    };
    const a = s.process('process-a');
    const b = s.process('process-b', bus);
    s.transport.consumeWith(a.engine.queued);
    const threadId = s.thread();
    s.llm.hold('first');
    const first = await s.sendQueued(threadId, 'first');
    await until(() => s.llm.entered('first'), 'the first reply to be under way');
    // The second message is driven in process B, whose slow poll (60 s) would never come in time.
    const second = randomUUID();
    await s.runs.create({ id: second, orgId: (await s.runs.getById(first))!.orgId, threadId, userId: randomUUID(), source: 'blocking', driver: 'inline', content: 'second', stages: ['intent', 'security', 'rag', 'rocketreach', 'openai'] });
    const done = b.engine.inline.drive(second, (await s.runs.getById(first))!.orgId, pendingStates(['intent', 'security', 'rag', 'rocketreach', 'openai'] as const));
    await until(() => (listeners.get(threadId)?.size ?? 0) > 0, 'the second reply to wait for its turn');
    s.llm.release('first');
    await until(async () => (await s.status(first)) === 'completed', 'the first run to complete');
    // What PostgreSQL's NOTIFY does for the adapter: the thread's run ended.
    for (const wake of listeners.get(threadId) ?? []) wake();
    await done;
    expect(await s.status(second)).toBe('completed');
    expect(s.replies).toEqual([first, second]);
    expect(listeners.get(threadId)?.size ?? 0).toBe(0);
  });
});
