import { readyDependents as readyDependentsOf, readyStages } from '../engine/dag.js';
import { CATALOG } from '../engine/catalog.js';
import type { StageName } from '../engine/catalog.js';
import type { JobTransport } from '../engine/ports/job-transport.js';
import type { RunsRepository } from '../db/repositories/runs.repository.js';
import type { StepStates } from '../engine/run.js';
import type { RecordedFailure, StageRunner } from '../domain/chat/stage-runner.js';

/** Steps that just finished together, with the run's step states as that finish left them. */
export interface Transition {
  finished: readonly StageName[];
  states: StepStates;
  threadId: string;
  messageSeq: number;
}

function readyDependents(states: StepStates, finished: readonly StageName[]): StageName[] {
  return readyDependentsOf(CATALOG, states, finished);
}

/**
 * Moves runs along the DAG on the queue driver: after a step finishes, enqueue the steps that
 * became ready. Job ids are deterministic, so two workers enqueueing the same step add one job.
 * The reply of a run waits for the earlier messages of its thread to be answered; when a run
 * finishes, the next open run of its thread is moved along.
 */
export function createProgression(deps: { runs: RunsRepository; queue: JobTransport; runner: StageRunner }) {
  const { runs, queue, runner } = deps;

  /**
   * Enqueues what became ready. After a step finished (`from.finished`), only the stages that
   * depend on it are candidates: completions serialise on the run row, so exactly the completion
   * that finishes a stage's last dependency sees it ready, and each job is added once. Without a
   * transition (a run's entry fan-out, its turn in the thread, the reconciler) every ready stage
   * is, except `from.exclude`.
   */
  async function advance(runId: string, orgId: string, from: Transition | { exclude?: StageName } = {}): Promise<void> {
    let states: StepStates;
    let thread: { threadId: string; messageSeq: number } | undefined;
    let frontier: StageName[];
    if ('finished' in from) {
      states = from.states;
      thread = { threadId: from.threadId, messageSeq: from.messageSeq };
      frontier = readyDependents(states, from.finished);
    } else {
      const steps = await runs.steps(runId);
      states = Object.fromEntries(steps.map((step) => [step.stage, step.status]));
      frontier = readyStages(CATALOG, states).filter((stage) => stage !== from.exclude);
    }
    const toEnqueue: StageName[] = [];
    // A step that needs no external call is settled here rather than spending a job on it.
    for (let stage = frontier.shift(); stage; stage = frontier.shift()) {
      const outcome = await runner.executeIfLocal(runId, stage);
      if (outcome === 'needs_queue') {
        toEnqueue.push(stage);
      } else if (outcome.status === 'completed') {
        states = outcome.states;
        thread ??= { threadId: outcome.threadId, messageSeq: outcome.messageSeq };
        for (const next of readyDependents(states, outcome.settled)) if (!frontier.includes(next) && !toEnqueue.includes(next)) frontier.push(next);
      }
    }
    if (toEnqueue.includes('openai')) {
      if (!thread) {
        const message = await runs.userMessage(runId);
        if (!message) return;
        thread = { threadId: message.threadId, messageSeq: message.seq };
      }
      // Not its turn yet: the earlier run's completion will move this one along.
      if (await runs.hasEarlierOpenRun(thread.threadId, thread.messageSeq)) toEnqueue.splice(toEnqueue.indexOf('openai'), 1);
    }
    if (toEnqueue.length > 0) await queue.enqueue(runId, orgId, toEnqueue);
  }

  /** Moves a run along from what PostgreSQL says, whatever happened before (a re-delivered job). */
  async function resume(runId: string, orgId: string): Promise<void> {
    const run = await runs.getById(runId);
    if (!run) return;
    if (run.finishedAt) await afterRunFinished(run.threadId);
    else await advance(runId, orgId);
  }

  /**
   * A run of the thread finished: the next one's reply may go. Only its LLM step waits for its
   * turn (its other steps were enqueued when they became ready). A run driven in-process
   * (degraded mode) waits for its turn by itself.
   */
  async function afterRunFinished(threadId: string): Promise<void> {
    const next = await runs.nextOpenRun(threadId);
    if (next?.driver === 'queue' && readyStages(CATALOG, next.states).includes('openai')) await queue.enqueue(next.id, next.orgId, ['openai']);
  }

  async function enqueue(runId: string, orgId: string, stages: readonly StageName[]): Promise<void> {
    if (stages.length > 0) await queue.enqueue(runId, orgId, stages);
  }

  /** After a step failed for good: the run either ended (LLM failed) or goes on without it. */
  async function afterFailure(runId: string, orgId: string, stage: StageName, failure: RecordedFailure): Promise<string> {
    if (failure.runFinished) {
      const message = await runs.userMessage(runId);
      if (message) await afterRunFinished(message.threadId);
      return 'stage failed for good; the run failed';
    }
    if (failure.states) {
      const message = await runs.userMessage(runId);
      if (message) await advance(runId, orgId, { finished: [stage], states: failure.states, threadId: message.threadId, messageSeq: message.seq });
    } else {
      await advance(runId, orgId);
    }
    return 'stage failed for good; the run goes on without it';
  }

  return { advance, enqueue, resume, afterRunFinished, afterFailure };
}

export type Progression = ReturnType<typeof createProgression>;
