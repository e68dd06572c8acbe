import { readyStages } from '../domain/pipeline.js';
import type { JobQueue } from '../domain/chat/job-queue.js';
import type { RunsRepository, StepStates } from '../db/repositories/runs.repository.js';
import type { StageRunner } from '../domain/chat/stage-runner.js';

/**
 * Moves runs along the DAG on the queue driver: after a step finishes, enqueue the steps that
 * became ready. Job ids are deterministic, so two workers enqueueing the same step add one job.
 * The reply of a run waits for the earlier messages of its thread to be answered; when a run
 * finishes, the next open run of its thread is moved along.
 */
export function createProgression(deps: { runs: RunsRepository; queue: JobQueue; runner: StageRunner }) {
  const { runs, queue, runner } = deps;

  async function advance(runId: string, orgId: string, known?: { states: StepStates; threadId: string; messageSeq: number }): Promise<void> {
    let states = known?.states;
    let thread = known ? { threadId: known.threadId, messageSeq: known.messageSeq } : undefined;
    if (!states) {
      const steps = await runs.steps(runId);
      states = Object.fromEntries(steps.map((step) => [step.stage, step.status]));
    }
    let ready = readyStages(states);
    if (ready.length === 0) return;
    // A step that needs no external call is settled here rather than spending a job on it.
    for (const stage of ready) {
      const outcome = await runner.executeIfLocal(runId, stage);
      if (outcome === 'needs_queue') continue;
      if (outcome.status === 'completed') {
        states = outcome.states;
        thread ??= { threadId: outcome.threadId, messageSeq: outcome.messageSeq };
      }
      ready = readyStages(states);
    }
    if (ready.length === 0) return;
    if (ready.includes('openai')) {
      if (!thread) {
        const message = await runs.userMessage(runId);
        if (!message) return;
        thread = { threadId: message.threadId, messageSeq: message.seq };
      }
      // Not its turn yet: the earlier run's completion will move this one along.
      if (await runs.hasEarlierOpenRun(thread.threadId, thread.messageSeq)) ready.splice(ready.indexOf('openai'), 1);
    }
    if (ready.length > 0) await queue.enqueue(runId, orgId, ready);
  }

  async function afterRunFinished(threadId: string): Promise<void> {
    const next = await runs.nextOpenRun(threadId);
    // A run driven in-process (degraded mode) waits for its turn by itself.
    if (next?.driver === 'queue') await advance(next.id, next.orgId);
  }

  /** After a step failed for good: the run either ended (LLM failed) or goes on without it. */
  async function afterFailure(runId: string, orgId: string, runFinished: boolean): Promise<string> {
    if (runFinished) {
      const message = await runs.userMessage(runId);
      if (message) await afterRunFinished(message.threadId);
      return 'stage failed for good; the run failed';
    }
    await advance(runId, orgId);
    return 'stage failed for good; the run goes on without it';
  }

  return { advance, afterRunFinished, afterFailure };
}

export type Progression = ReturnType<typeof createProgression>;
