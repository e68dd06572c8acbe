import { setTimeout as delay } from 'node:timers/promises';
import { createPeriodicTask } from '../lib/periodic.js';
import { isTerminal, readyStages } from './dag.js';
import type { Engine } from './engine.js';
import type { JobTransport } from './ports/job-transport.js';
import type { RunStore } from './ports/run-store.js';
import type { StepStates } from './run.js';
import type { AnyCatalog, StageOf } from './stage.js';

/** A run driven in-process may legitimately take this long (LLM timeouts and retries). */
const INLINE_GRACE_MS = 10 * 60_000;
/** After a restart of the store: how long, and how often, the runs open then are looked at again. */
const AFTER_RESTART_WINDOW_MS = 30_000;
const AFTER_RESTART_EVERY_MS = 1_000;
/** Runs looked at by one sweep, and by one pass after a restart. */
const SWEEP_LIMIT = 200;
const RESTART_LIMIT = 5_000;

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
    // No queues: the takeover (takeover.ts) drives the queues' open runs in-process, under a
    // lease; an in-process run whose process is gone is handed to it as one of them.
    if (!queue.available()) {
      if (run.driver === 'queue') return false;
      await runs.setDriver(run.id, 'queue');
      return true;
    }
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

  /** One pass over the open runs older than `afterMs` (only those of `among`, when given); answers the runs re-driven and those looked at. */
  async function pass(afterMs = deps.afterMs, among?: ReadonlySet<string>): Promise<{ redriven: number; open: Set<string> }> {
    let redriven = 0;
    const all = await runs.openRunsOlderThan(afterMs, among ? RESTART_LIMIT : SWEEP_LIMIT);
    const candidates = among ? all.filter((run) => among.has(run.id)) : all;
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
    return { redriven, open: new Set(candidates.map((run) => run.id)) };
  }

  async function tick(): Promise<number> {
    return (await deps.lead(() => pass()))?.redriven ?? 0;
  }

  const stopping = new AbortController();

  /**
   * Passes now over the runs open at this moment, whatever their age, after something that may
   * have lost step completions (a PostgreSQL restart) rather than at the next sweep; then again
   * every second while any of them is open, for up to 30 s, since a step re-driven may find that
   * the job of the next one already ran (and found nothing to do) while its completion was
   * missing. Answers the runs re-driven.
   */
  async function reconcileNow(): Promise<number> {
    const deadline = Date.now() + AFTER_RESTART_WINDOW_MS;
    let among = new Set((await runs.openRunsOlderThan(0, RESTART_LIMIT)).map((run) => run.id));
    let redriven = 0;
    while (!stopping.signal.aborted) {
      const outcome = await deps.lead(() => pass(0, among));
      if (outcome) {
        redriven += outcome.redriven;
        among = outcome.open;
      }
      if (among.size === 0 || Date.now() >= deadline) break;
      await delay(AFTER_RESTART_EVERY_MS, undefined, { signal: stopping.signal, ref: false }).catch(() => undefined);
    }
    return redriven;
  }

  const schedule = createPeriodicTask(tick, (err) => logger.warn({ err: { message: (err as Error).message } }, 'reconciler pass failed'));
  return {
    tick,
    reconcileNow,
    start: schedule.start,
    async stop(): Promise<void> {
      stopping.abort();
      await schedule.stop();
    },
  };
}
