import { randomUUID } from 'node:crypto';
import { readyStages } from '../../../src/engine/dag.js';
import { createEngine, pendingStates } from '../../../src/engine/engine.js';
import type { StageServices } from '../../../src/engine/services.js';
import type { AnyCatalog, StageOf } from '../../../src/engine/stage.js';
import { createLocalIntentClassifier } from '../../../src/domain/stages/intent/intent.service.js';
import { createLlmStage } from '../../../src/domain/stages/llm/llm.stage.js';
import { createOfflineProvider } from '../../../src/domain/stages/llm/offline.provider.js';
import { createRagService } from '../../../src/domain/stages/rag/rag.service.js';
import { createMemoryContactCache, createRocketReachStage } from '../../../src/domain/stages/rocketreach/rocketreach.stage.js';
import { classifySecurity } from '../../../src/domain/stages/security/security.service.js';
import { createMemoryRunStore } from '../../fakes/memory-run-store.js';
import { createMemoryTransport } from '../../fakes/memory-transport.js';
import { createMemoryRunEvents } from '../../fakes/memory-run-events.js';

/** The real stage services that need no network: local intent model, detectors, offline LLM, no documents. */
export function localServices(overrides: Partial<StageServices> = {}): StageServices {
  const offline = createOfflineProvider();
  return {
    intent: createLocalIntentClassifier(),
    classifySecurity,
    classifyTurn: classifySecurity,
    rag: createRagService({ search: { search: async () => [] }, scan: classifySecurity }),
    rocketreach: createRocketReachStage({ client: undefined, cache: createMemoryContactCache() }),
    llm: createLlmStage({ provider: offline, offline }),
    ...overrides,
  };
}

/** An engine on the memory run store and the memory queues, for the given catalog. */
export function createHarness<C extends AnyCatalog>(catalog: C, services: StageServices = localServices()) {
  type S = StageOf<C>;
  const events = createMemoryRunEvents();
  const runs = createMemoryRunStore(catalog, { events });
  const transport = createMemoryTransport<S>();
  const errors: unknown[] = [];
  const engine = createEngine({
    catalog,
    runs,
    transport,
    services,
    settings: { historyTokenBudget: 3_000 },
    onError: (error) => errors.push(error),
    inline: { maxBackoffMs: 5 },
    events,
    eventFlushMs: 0,
  });
  transport.consumeWith(engine.queued);
  const orgId = randomUUID();
  const userId = randomUUID();
  const included = (Object.keys(catalog) as S[]).filter((stage) => catalog[stage]!.includedWhen?.({}) ?? true);

  /** Accepts a message as the chat service does, for the given driver. */
  async function accept(threadId: string, content: string, driver: 'queue' | 'inline') {
    const id = randomUUID();
    const created = await runs.create({ id, orgId, threadId, userId, source: driver === 'queue' ? 'queued' : 'blocking', driver, content, stages: included });
    if (created.kind !== 'created') throw new Error(created.kind);
    return id;
  }

  return {
    runs,
    events,
    transport,
    engine,
    errors,
    orgId,
    thread: () => runs.addThread(orgId),
    /** Queued: the entry job fans out to the run's other root stages, as on the accept path. */
    async sendQueued(threadId: string, content: string): Promise<string> {
      const id = await accept(threadId, content, 'queue');
      const [entry, ...others] = readyStages(catalog, pendingStates(included));
      await transport.enqueue(id, orgId, [entry!], { fanout: others });
      return id;
    },
    /** Blocking: driven in this process; resolves with the run id once it has ended. */
    async sendInline(threadId: string, content: string, signal?: AbortSignal): Promise<{ id: string; done: Promise<void> }> {
      const id = await accept(threadId, content, 'inline');
      return { id, done: engine.inline.drive(id, orgId, pendingStates(included), signal) };
    },
    async document(runId: string) {
      const found = await runs.getWithSteps(orgId, runId);
      if (!found) throw new Error('no such run');
      return { status: found.run.status, results: Object.fromEntries(found.steps.filter((s) => s.status === 'completed').map((s) => [s.stage, s.result])), steps: found.steps };
    },
  };
}

/** Resolves when `check` holds, re-checking after each turn of the event loop (no fixed sleep). */
export async function until(check: () => Promise<boolean> | boolean, what: string, turns = 20_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (await check()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}
