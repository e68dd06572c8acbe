import { createPeriodicTask } from '../lib/periodic.js';
import { isTerminal, readyStages } from './dag.js';
import type { Engine } from './engine.js';
import type { JobTransport } from './ports/job-transport.js';
import type { RunStore } from './ports/run-store.js';
import type { StepStates } from './run.js';
import type { AnyCatalog, StageOf } from './stage.js';

/** A run driven in-process may legitimately take this long (LLM timeouts and retries). */
const INLINE_GRACE_MS = 10 * 60_000;

/** Runs `fn` only in the one process that holds the named lock now; undefined elsewhere. */
export type Lead = <T>(fn: () => Promise<T>) => Promise<T | undefined>;

export interface ReconcilerLogger {
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

/**
 * Finds runs that were accepted but never finished — the enqueue failed, Redis was flushed, a
 * process died mid-run — and drives them again. The store says what is left to do; a job is
 * re-added only where none exists. One reconciler works at a time across all processes (`lead`).
 */
export function createReconciler<C extends AnyCatalog>(deps: {
  catalog: C;
  engine: Engine<StageOf<C>>;
  runs: RunStore<StageOf<C>>;
  queue: JobTransport<StageOf<C>>;
  lead: Lead;
  afterMs: number;
  logger: ReconcilerLogger;
}) {
  const { catalog, engine, runs, queue, logger } = deps;

  async function reconcileRun(run: { id: string; orgId: string; driver: string }): Promise<boolean> {
    // No queues: the takeover (takeover.ts) drives open runs in-process, under a lease.
    if (!queue.available()) return false;
    const steps = await runs.steps(run.id);
    const states = Object.fromEntries(steps.map((s) => [s.stage, s.status])) as StepStates<StageOf<C>>;
    if (run.driver !== 'queue') await runs.setDriver(run.id, 'queue');
    // Steps that could be running or waiting: started ones, and pending ones whose turn has come.
    const ready = new Set(readyStages(catalog, states));
    const bound = engine.threadOrder.turnBound([...ready]);
    if (bound.length > 0) {
      const message = await runs.userMessage(run.id);
      if (!message || !(await engine.threadOrder.mayTakeTurn(message.threadId, message.seq))) for (const stage of bound) ready.delete(stage);
    }
    const candidates = steps.filter((s) => !isTerminal(s.status) && (s.status !== 'pending' || ready.has(s.stage)));
    const live = await queue.inspect(candidates.map((s) => ({ jobId: s.jobId, stage: s.stage })));
    const lost = candidates.filter((s) => {
      const job = live.get(s.jobId);
      return !job || job.state === 'completed' || job.state === 'failed';
    });
    if (lost.length === 0) return false;
    // A finished job whose step the store still holds open is removed so that it can be added again.
    await queue.discardFinished(lost.filter((s) => live.has(s.jobId)).map((s) => ({ jobId: s.jobId, stage: s.stage })));
    await queue.enqueue(
      run.id,
      run.orgId,
      lost.map((s) => s.stage),
    );
    return true;
  }

  async function pass(afterMs = deps.afterMs): Promise<number> {
    let redriven = 0;
    const candidates = await runs.openRunsOlderThan(afterMs, 200);
    const inlineCutoff = Date.now() - Math.max(INLINE_GRACE_MS, afterMs);
    for (const run of candidates) {
      // A live lease: its holder drives it. An expired one: its holder is gone, no grace is owed.
      if (run.lease === 'held' || engine.inline.holds(run.id)) continue;
      if (run.driver === 'inline' && run.lease !== 'expired') {
        const full = await runs.getById(run.id);
        if (!full || full.createdAt.getTime() > inlineCutoff) continue;
      }
      if (await reconcileRun(run)) redriven++;
    }
    if (redriven > 0) logger.warn({ redriven }, 'reconciler re-drove unfinished runs');
    return redriven;
  }

  async function tick(): Promise<number> {
    return (await deps.lead(() => pass())) ?? 0;
  }

  /**
   * A pass now over every open run, whatever its age: after something that may have lost step
   * completions (a PostgreSQL restart) rather than at the next sweep. Answers the runs re-driven.
   */
  async function reconcileNow(): Promise<number> {
    return (await deps.lead(() => pass(0))) ?? 0;
  }

  const schedule = createPeriodicTask(tick, (err) => logger.warn({ err: { message: (err as Error).message } }, 'reconciler pass failed'));
  return { tick, reconcileNow, start: schedule.start, stop: schedule.stop };
}
