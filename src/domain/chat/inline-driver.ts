import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelay, stageOrder } from '../../engine/dag.js';
import { CATALOG } from '../../engine/catalog.js';
import { StageError } from '../errors.js';
import type { StageName } from '../../engine/catalog.js';
import { isPermanent, type StageRunner } from './stage-runner.js';
import type { RunsRepository } from '../../db/repositories/runs.repository.js';
import type { StepError } from '../../engine/run.js';

export interface InlineDriverOptions {
  maxBackoffMs?: number;
  /** How long a reply waits for the earlier messages of its thread to be answered. */
  turnTimeoutMs?: number;
}

/**
 * Drives a run's stages in this process, honouring the DAG, each stage's retry policy and the
 * order of replies within a thread. Used by the blocking endpoint and whenever the queues cannot
 * be reached.
 */
export function createInlineDriver(runner: StageRunner, runs: RunsRepository, options: InlineDriverOptions = {}) {
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const turnTimeoutMs = options.turnTimeoutMs ?? 120_000;

  async function runStage(runId: string, stage: StageName, signal?: AbortSignal): Promise<void> {
    const definition = CATALOG[stage];
    for (let attempt = 1; ; attempt++) {
      try {
        await runner.execute(runId, stage, signal);
        return;
      } catch (error) {
        // Aborted: the run is ended as a whole once every stage has stopped (see drive).
        if (signal?.aborted) return;
        const final = isPermanent(error) || attempt >= definition.attempts;
        await runner.recordFailure(runId, stage, error, final);
        if (final) return;
        const retryAfter = error instanceof StageError ? (error.retryAfterMs ?? 0) : 0;
        await delay(Math.min(maxBackoffMs, Math.max(retryAfter, backoffDelay(definition, attempt))), undefined, { signal });
      }
    }
  }

  /** Replies in a thread are produced in the order the messages were sent. */
  async function waitForTurn(runId: string, signal?: AbortSignal): Promise<void> {
    const message = await runs.userMessage(runId);
    if (!message) return;
    const deadline = Date.now() + turnTimeoutMs;
    for (let pause = 10; await runs.hasEarlierOpenRun(message.threadId, message.seq); pause = Math.min(pause * 2, 250)) {
      if (Date.now() > deadline) return;
      await delay(pause, undefined, { signal });
    }
  }

  /** Runs the given stages (all by default); resolves when every one has finished or failed for good. */
  async function drive(runId: string, stages: readonly StageName[] = stageOrder(CATALOG), signal?: AbortSignal): Promise<void> {
    const included = new Set(stages);
    const finished = new Map<StageName, Promise<void>>();
    for (const stage of stageOrder(CATALOG)) {
      if (!included.has(stage)) continue;
      const waitFor = (CATALOG[stage].dependsOn as readonly StageName[]).filter((dep) => included.has(dep)).map((dep) => finished.get(dep)!);
      if (stage === 'openai') waitFor.push(waitForTurn(runId, signal));
      finished.set(
        stage,
        Promise.all(waitFor)
          .then(() => runStage(runId, stage, signal))
          .catch(() => undefined),
      );
    }
    await Promise.all(finished.values());
    // Nothing is left open behind an abort: the thread's next message must not wait for this one.
    if (signal?.aborted) await runs.finish(runId, 'cancelled', abortInfo(signal.reason));
  }

  return { drive };
}

export type InlineDriver = ReturnType<typeof createInlineDriver>;

/** What an aborted run records: the code of a StageError given as the abort's reason, or `aborted`. */
function abortInfo(reason: unknown): StepError {
  if (reason instanceof StageError) return { code: reason.code, message: reason.message };
  return { code: 'aborted', message: 'the run was aborted' };
}
