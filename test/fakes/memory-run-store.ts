import { randomUUID } from 'node:crypto';
import { isTerminal, stageOrder } from '../../src/engine/dag.js';
import { jobIdFor, parseJobId } from '../../src/engine/job-id.js';
import type { RunStore, StepCompletion, TakenRun } from '../../src/engine/ports/run-store.js';
import type { AcceptOutcome, LoadedStep, NewRun, OpenRun, Run, Step, StepError, StepStates, StepStatus } from '../../src/engine/run.js';
import type { AnyCatalog, StageOf } from '../../src/engine/stage.js';
import { closingEvents, startedEvent } from '../../src/engine/events/grammar.js';
import type { RunEventBody } from '../../src/engine/ports/run-events.js';
import type { MemoryRunEvents } from './memory-run-events.js';

interface StoredRun<S extends string> {
  run: Run;
  seq: number;
  content: string;
  messageId: string;
  states: StepStates<S>;
  rows: Map<S, Step<S>>;
  reply?: { id: string; content: string; guarded: boolean };
  /** The takeover lease: who holds the run and until when (ms since the epoch). */
  lease?: { owner: string; expiresAt: number };
}

/**
 * The RunStore contract in memory, for engine tests that need no PostgreSQL: each call is one
 * atomic "statement", so the caller that writes a step is the one that settles it.
 */
export function createMemoryRunStore<C extends AnyCatalog>(catalog: C, options: { now?: () => number; events?: MemoryRunEvents } = {}) {
  const { events } = options;
  type S = StageOf<C>;
  const now = options.now ?? Date.now;
  const threads = new Map<string, string>();
  const stored = new Map<string, StoredRun<S>>();
  let seq = 0;
  /** Statements refused by the lease fence (a caller that does not hold the run). */
  let fenced = 0;

  const leaseExpired = (r: StoredRun<S>) => r.lease !== undefined && r.lease.expiresAt < now();
  /** The fence of every step statement: nobody holds the run, the caller does, or the lease expired. */
  const holds = (r: StoredRun<S>, lease: string | undefined): boolean => {
    const ok = r.lease === undefined || r.lease.owner === lease || leaseExpired(r);
    if (!ok) fenced++;
    return ok;
  };
  const takeable = (r: StoredRun<S>) => open(r) && ((r.run.driver === 'queue' && r.lease === undefined) || leaseExpired(r));

  const open = (r: StoredRun<S> | undefined): r is StoredRun<S> => r !== undefined && r.run.finishedAt === null;
  const depsDone = (r: StoredRun<S>, stage: S) =>
    catalog[stage]!.dependsOn.every((dep) => (r.states as Record<string, StepStatus | undefined>)[dep] === undefined || isTerminal((r.states as Record<string, StepStatus>)[dep]));
  const mayRun = (r: StoredRun<S> | undefined, stage: S): r is StoredRun<S> =>
    open(r) && r.states[stage] !== undefined && !isTerminal(r.states[stage]) && depsDone(r, stage);

  function row(r: StoredRun<S>, stage: S): Step<S> {
    let step = r.rows.get(stage);
    if (!step) {
      step = {
        runId: r.run.id, stage, jobId: jobIdFor(r.run.id, stage), queue: catalog[stage]!.queue, status: 'pending', attempts: 0,
        maxAttempts: catalog[stage]!.attempts, result: null, error: null, createdAt: r.run.createdAt, startedAt: null, finishedAt: null,
      };
      r.rows.set(stage, step);
    }
    return step;
  }

  function loaded(r: StoredRun<S>, stage: S, attempts: number, historyTurns: number): LoadedStep<S> {
    const results: Partial<Record<S, unknown>> = {};
    for (const dep of catalog[stage]!.dependsOn as S[]) {
      const done = r.rows.get(dep);
      if (done?.status === 'completed') results[dep] = done.result;
    }
    const earlier = [...stored.values()]
      .filter((o) => o.run.threadId === r.run.threadId && o.seq < r.seq && o.reply && !o.reply.guarded)
      .sort((a, b) => a.seq - b.seq)
      .slice(-historyTurns)
      .flatMap((o) => [
        { role: 'user' as const, content: o.content, turn: o.seq },
        { role: 'assistant' as const, content: o.reply!.content, turn: o.seq },
      ]);
    return {
      runId: r.run.id, stage, attempts, maxAttempts: catalog[stage]!.attempts, orgId: r.run.orgId, threadId: r.run.threadId, options: r.run.options,
      messageId: r.messageId, messageSeq: r.seq, content: r.content, results, states: { ...r.states },
      ...(historyTurns > 0 ? { history: earlier } : {}),
    };
  }

  function end(r: StoredRun<S>, status: Run['status'], error: StepError | null): void {
    r.run = { ...r.run, status, finishedAt: new Date(), error };
  }

  function stepsOf(r: StoredRun<S>): Step<S>[] {
    return stageOrder(catalog)
      .filter((stage) => r.states[stage] !== undefined)
      .map((stage) => ({ ...(r.rows.get(stage) ?? row({ ...r, rows: new Map() }, stage)), status: r.rows.get(stage)?.status ?? r.states[stage]! }));
  }

  const store: RunStore<S> = {
    async create(input: NewRun<S>): Promise<AcceptOutcome> {
      if (input.newThread) threads.set(input.threadId, input.orgId);
      if (threads.get(input.threadId) !== input.orgId) return { kind: 'thread_not_found' };
      const run: Run = {
        id: input.id, orgId: input.orgId, threadId: input.threadId, userId: input.userId, status: 'processing', source: input.source, driver: input.driver,
        options: input.options ?? {}, idempotencyKey: input.idempotencyKey ?? null, error: null, createdAt: new Date(), finishedAt: null,
      };
      const states = Object.fromEntries(input.stages.map((stage) => [stage, 'pending'])) as StepStates<S>;
      const messageId = randomUUID();
      stored.set(input.id, { run, seq: ++seq, content: input.content, messageId, states, rows: new Map() });
      events?.begin({ runId: input.id, orgId: input.orgId, threadId: input.threadId, runSeq: seq });
      return { kind: 'created', runId: input.id, createdAt: run.createdAt, messageId };
    },
    async get(orgId, runId) {
      const r = stored.get(runId);
      return r && r.run.orgId === orgId ? r.run : undefined;
    },
    getById: async (runId) => stored.get(runId)?.run,
    findByIdempotencyKey: async (orgId, key) => [...stored.values()].find((r) => r.run.orgId === orgId && r.run.idempotencyKey === key)?.run,
    async getWithSteps(orgId, runId) {
      const r = stored.get(runId);
      return r && r.run.orgId === orgId ? { run: r.run, steps: stepsOf(r) } : undefined;
    },
    async steps(runId) {
      const r = stored.get(runId);
      return r ? stepsOf(r) : [];
    },
    async stepsByJobIds(orgId, jobIds) {
      return jobIds.flatMap((jobId) => {
        const parsed = parseJobId(catalog, jobId);
        const r = parsed ? stored.get(parsed.runId) : undefined;
        return r && r.run.orgId === orgId ? stepsOf(r).filter((s) => s.stage === parsed!.stage) : [];
      });
    },
    async userMessage(runId) {
      const r = stored.get(runId);
      return r ? { id: r.messageId, seq: r.seq, content: r.content, threadId: r.run.threadId } : undefined;
    },
    async assistantMessage(runId) {
      const reply = stored.get(runId)?.reply;
      return reply ? { id: reply.id, content: reply.content } : undefined;
    },
    async loadStep(runId, stage, lease) {
      const r = stored.get(runId);
      if (!mayRun(r, stage) || !holds(r, lease)) return undefined;
      return { ...loaded(r, stage, (r.rows.get(stage)?.attempts ?? 0) + 1, 0), loadedAt: new Date() };
    },
    async claimStep(runId, stage, options = {}) {
      const r = stored.get(runId);
      if (!mayRun(r, stage) || !holds(r, options.lease)) return undefined;
      const step = row(r, stage);
      step.status = 'active';
      step.attempts += 1;
      step.startedAt ??= new Date();
      if (options.started) events?.write(runId, [startedEvent(stage, step.attempts)]);
      return loaded(r, stage, step.attempts, options.historyTurns ?? 0);
    },
    async completeSteps(runId, completions: ReadonlyArray<StepCompletion<S>>, lease) {
      const r = stored.get(runId);
      const written: S[] = [];
      const stepEvents: RunEventBody[] = [];
      if (open(r) && holds(r, lease)) {
        for (const { stage, result, loadedAt, events: bodies } of completions) {
          const step = row(r, stage);
          if (isTerminal(step.status) || written.includes(stage)) continue;
          Object.assign(step, { status: 'completed', result, error: null, finishedAt: new Date(), attempts: step.attempts + (loadedAt ? 1 : 0) });
          step.startedAt ??= loadedAt ?? new Date();
          r.states = { ...r.states, [stage]: 'completed' };
          written.push(stage);
          stepEvents.push(...(bodies ?? []));
        }
        if (written.length > 0 && r.run.status === 'processing') r.run = { ...r.run, status: 'partial' };
        events?.write(runId, stepEvents);
      }
      return { written, settled: [...written], states: r ? { ...r.states } : {} };
    },
    async failAttempt(runId, stage, error, final, lease) {
      const r = stored.get(runId);
      if (!open(r) || r.states[stage] === undefined || !holds(r, lease)) return { written: false, states: null };
      const step = row(r, stage);
      if (isTerminal(step.status)) return { written: false, states: null };
      Object.assign(step, { status: final ? 'failed' : 'retrying', error, attempts: catalog[stage]!.callsOut ? Math.max(step.attempts, 1) : step.attempts + 1 });
      if (final) step.finishedAt = new Date();
      if (!final) return { written: true, states: null };
      r.states = { ...r.states, [stage]: 'failed' };
      return { written: true, states: { ...r.states } };
    },
    async completeWithReply(runId, stage, content, result, options = {}) {
      const r = stored.get(runId);
      if (!open(r) || !holds(r, options.lease)) return undefined;
      end(r, 'completed', null);
      r.states = { ...r.states, [stage]: 'completed' };
      r.reply = { id: randomUUID(), content, guarded: options.guarded === true };
      Object.assign(row(r, stage), { status: 'completed', error: null, finishedAt: new Date(), result: { ...(result as object), assistantMessageId: r.reply.id } });
      events?.close(runId, [
        ...(options.events ?? []),
        ...closingEvents('completed', { reply: { stage, result } }).map((e) => (e.type === 'run' ? { ...e, messageId: r.reply!.id } : e)),
      ]);
      return { messageId: r.reply.id };
    },
    async finish(runId, status, error) {
      const r = stored.get(runId);
      if (!open(r)) return false;
      end(r, status, error ?? null);
      r.states = Object.fromEntries(Object.entries(r.states).map(([k, v]) => [k, isTerminal(v as StepStatus) ? v : 'cancelled'])) as StepStates<S>;
      for (const step of r.rows.values()) if (!isTerminal(step.status)) Object.assign(step, { status: 'cancelled', finishedAt: new Date() });
      events?.close(runId, closingEvents(status, { error: error ?? null }));
      return true;
    },
    hasEarlierOpenRun: async (threadId, messageSeq) => [...stored.values()].some((r) => r.run.threadId === threadId && open(r) && r.seq < messageSeq),
    async nextOpenRun(threadId): Promise<OpenRun<S> | undefined> {
      const next = [...stored.values()].filter((r) => r.run.threadId === threadId && open(r)).sort((a, b) => a.seq - b.seq)[0];
      return next ? { id: next.run.id, orgId: next.run.orgId, driver: next.run.driver, states: { ...next.states } } : undefined;
    },
    openRunsOlderThan: async (ageMs, limit) =>
      [...stored.values()]
        .filter((r) => open(r) && r.run.createdAt.getTime() < Date.now() - ageMs)
        .slice(0, limit)
        .map((r) => ({ id: r.run.id, orgId: r.run.orgId, driver: r.run.driver, ...(r.lease ? { lease: leaseExpired(r) ? ('expired' as const) : ('held' as const) } : {}) })),
    async setDriver(runId, driver) {
      const r = stored.get(runId);
      if (r) r.run = { ...r.run, driver };
    },
    async takeOver(owner, leaseMs, limit): Promise<TakenRun<S>[]> {
      const taken = [...stored.values()]
        .filter(takeable)
        .sort((a, b) => a.seq - b.seq)
        .slice(0, limit);
      for (const r of taken) {
        r.lease = { owner, expiresAt: now() + leaseMs };
        r.run = { ...r.run, driver: 'inline' };
      }
      return taken.map((r) => ({ id: r.run.id, orgId: r.run.orgId, threadId: r.run.threadId, seq: r.seq, states: { ...r.states } }));
    },
    async renewLeases(owner, runIds, leaseMs) {
      return runIds.filter((id) => {
        const r = stored.get(id);
        if (!open(r) || r.lease?.owner !== owner) return false;
        r.lease = { owner, expiresAt: now() + leaseMs };
        return true;
      });
    },
    async releaseLeases(owner, runIds) {
      for (const id of runIds) {
        const r = stored.get(id);
        if (!r || r.lease?.owner !== owner) continue;
        delete r.lease;
        if (open(r)) r.run = { ...r.run, driver: 'queue' };
      }
    },
  };

  return {
    ...store,
    /** Who holds the run's lease now, if anyone. */
    leaseOf: (runId: string) => stored.get(runId)?.lease,
    /** How many step statements the lease fence refused. */
    fenced: () => fenced,
    /** A thread of the organization, as the threads repository would write it. */
    addThread(orgId: string): string {
      const id = randomUUID();
      threads.set(id, orgId);
      return id;
    },
  };
}
