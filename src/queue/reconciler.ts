import type pg from 'pg';
import { createPeriodicTask } from '../lib/periodic.js';
import type { Logger } from 'pino';
import { isTerminal, readyStages } from '../engine/dag.js';
import type { StepStatus } from '../engine/run.js';
import type { JobTransport } from '../engine/ports/job-transport.js';
import type { InlineDriver } from '../domain/chat/inline-driver.js';
import type { RunsRepository } from '../db/repositories/runs.repository.js';
import { CATALOG, type StageName } from '../engine/catalog.js';

const RECONCILER_LOCK_ID = 7_240_312;
/** A run driven in-process may legitimately take this long (LLM timeouts and retries). */
const INLINE_GRACE_MS = 10 * 60_000;

/**
 * Finds runs that were accepted but never finished — the enqueue failed, Redis was flushed, a
 * process died mid-run — and drives them again. PostgreSQL says what is left to do; a job is
 * re-added only where none exists. One reconciler works at a time across all processes.
 */
export function createReconciler(deps: {
  pool: pg.Pool;
  runs: RunsRepository;
  queue: JobTransport;
  inline: InlineDriver;
  afterMs: number;
  logger: Logger;
}) {
  const { pool, runs, queue, inline, logger } = deps;

  async function reconcileRun(run: { id: string; orgId: string; driver: string; createdAt?: Date }): Promise<boolean> {
    const steps = await runs.steps(run.id);
    const states = Object.fromEntries(steps.map((s) => [s.stage, s.status])) as Partial<Record<StageName, StepStatus>>;
    if (!queue.available()) {
      // No queues: finish it here, as the degraded path would.
      await runs.setDriver(run.id, 'inline');
      void inline.drive(run.id, steps.map((s) => s.stage)).catch((err: unknown) => logger.error({ err, runId: run.id }, 're-driven run failed'));
      return true;
    }
    if (run.driver !== 'queue') await runs.setDriver(run.id, 'queue');
    // Steps that could be running or waiting: started ones, and pending ones whose turn has come.
    const ready = new Set(readyStages(CATALOG, states));
    // The reply waits for the earlier messages of its thread, as in the progression.
    if (ready.has('openai')) {
      const message = await runs.userMessage(run.id);
      if (!message || (await runs.hasEarlierOpenRun(message.threadId, message.seq))) ready.delete('openai');
    }
    const candidates = steps.filter((s) => !isTerminal(s.status) && (s.status !== 'pending' || ready.has(s.stage)));
    const live = await queue.inspect(candidates.map((s) => ({ jobId: s.jobId, stage: s.stage })));
    const lost = candidates.filter((s) => {
      const job = live.get(s.jobId);
      return !job || job.state === 'completed' || job.state === 'failed';
    });
    if (lost.length === 0) return false;
    // A finished job whose step PostgreSQL still holds open is removed so that it can be added again.
    await queue.discardFinished(lost.filter((s) => live.has(s.jobId)).map((s) => ({ jobId: s.jobId, stage: s.stage })));
    await queue.enqueue(run.id, run.orgId, lost.map((s) => s.stage));
    return true;
  }

  async function tick(): Promise<number> {
    const client = await pool.connect();
    try {
      const { rows } = await client.query('select pg_try_advisory_lock($1) as locked', [RECONCILER_LOCK_ID]);
      if (!rows[0]?.locked) return 0;
      try {
        let redriven = 0;
        const candidates = await runs.openRunsOlderThan(deps.afterMs, 200);
        const inlineCutoff = Date.now() - Math.max(INLINE_GRACE_MS, deps.afterMs);
        for (const run of candidates) {
          if (run.driver === 'inline') {
            const full = await runs.getById(run.id);
            if (!full || full.createdAt.getTime() > inlineCutoff) continue;
          }
          if (await reconcileRun(run)) redriven++;
        }
        if (redriven > 0) logger.warn({ redriven }, 'reconciler re-drove unfinished runs');
        return redriven;
      } finally {
        await client.query('select pg_advisory_unlock($1)', [RECONCILER_LOCK_ID]);
      }
    } finally {
      client.release();
    }
  }

  const schedule = createPeriodicTask(tick, (err) =>
    logger.warn({ err: { message: (err as Error).message } }, 'reconciler pass failed'),
  );
  return { tick, start: schedule.start, stop: schedule.stop };
}
