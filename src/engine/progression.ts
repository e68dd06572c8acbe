import { readyDependents, readyStages } from './dag.js';
import type { RunStore } from './ports/run-store.js';
import type { StepStates } from './run.js';
import type { AnyCatalog, StageOf } from './stage.js';
import type { RecordedFailure, Steps } from './steps.js';
import type { ThreadOrder } from './thread-order.js';

/** Steps that just finished together, with the run's step states as that finish left them. */
export interface Transition<S extends string> {
  finished: readonly S[];
  states: StepStates<S>;
  threadId: string;
  messageSeq: number;
}

/** A run as the progression moves it: who drives it decides where its ready steps go. */
export interface MovedRun {
  id: string;
  orgId: string;
  driver: 'queue' | 'inline';
  /** The lease this process holds on the run (taken over from the queues), passed to the store's fenced statements. */
  lease?: string | undefined;
}

/** Where ready steps go: the driver's transport, or (turn-bound steps whose turn has not come) a wait. */
export interface Dispatcher<S extends string> {
  send(run: MovedRun, stages: readonly S[]): Promise<void>;
  /** Turn-bound steps of a run whose turn has not come; the queues need nothing (the earlier run's end moves it). */
  notYourTurn(run: MovedRun, stages: readonly S[], thread: { threadId: string; messageSeq: number }): void;
}

/**
 * Moves runs along the DAG, for both drivers: after a step finishes, the steps that became ready
 * are settled locally (a stage's settleLocally) or sent to the run's driver; a turn-bound step
 * waits for the earlier messages of its thread.
 */
export function createProgression<C extends AnyCatalog>(deps: {
  catalog: C;
  runs: RunStore<StageOf<C>>;
  steps: Steps<StageOf<C>>;
  threadOrder: ThreadOrder<StageOf<C>>;
  dispatcher: Dispatcher<StageOf<C>>;
}) {
  type S = StageOf<C>;
  const { catalog, runs, steps, threadOrder, dispatcher } = deps;

  /**
   * Sends what became ready. After a step finished (`from.finished`), only the stages that
   * depend on it are candidates: completions serialise on the run row, so exactly the completion
   * that finishes a stage's last dependency sees it ready, and each step is sent once. Without a
   * transition (a run's entry fan-out, a re-delivered job, the reconciler) every ready stage is,
   * except `from.exclude`.
   */
  async function advance(run: MovedRun, from: Transition<S> | { exclude?: S } = {}): Promise<void> {
    let states: StepStates<S>;
    let thread: { threadId: string; messageSeq: number } | undefined;
    let frontier: S[];
    if ('finished' in from) {
      states = from.states;
      thread = { threadId: from.threadId, messageSeq: from.messageSeq };
      frontier = readyDependents(catalog, states, from.finished);
    } else {
      const all = await runs.steps(run.id);
      states = Object.fromEntries(all.map((step) => [step.stage, step.status])) as StepStates<S>;
      frontier = readyStages(catalog, states).filter((stage) => stage !== from.exclude);
    }
    const toSend: S[] = [];
    // A step that needs no external call is settled here rather than spending a job on it.
    for (let stage = frontier.shift(); stage; stage = frontier.shift()) {
      const outcome = await steps.executeIfLocal(run.id, stage, run.lease);
      if (outcome === 'needs_queue') {
        toSend.push(stage);
      } else if (outcome.status === 'completed') {
        states = outcome.states;
        thread ??= { threadId: outcome.threadId, messageSeq: outcome.messageSeq };
        for (const next of readyDependents(catalog, states, outcome.settled)) if (!frontier.includes(next) && !toSend.includes(next)) frontier.push(next);
      }
    }
    const bound = threadOrder.turnBound(toSend);
    if (bound.length > 0) {
      if (!thread) {
        const message = await runs.userMessage(run.id);
        if (!message) return;
        thread = { threadId: message.threadId, messageSeq: message.seq };
      }
      if (!(await threadOrder.mayTakeTurn(thread.threadId, thread.messageSeq))) {
        for (const stage of bound) toSend.splice(toSend.indexOf(stage), 1);
        dispatcher.notYourTurn(run, bound, thread);
      }
    }
    if (toSend.length > 0) await dispatcher.send(run, toSend);
  }

  /** Moves a run along from what the store says, whatever happened before (a re-delivered job). */
  async function resume(run: MovedRun): Promise<void> {
    const stored = await runs.getById(run.id);
    if (!stored) return;
    if (stored.finishedAt) await threadOrder.afterRunFinished(stored.threadId);
    // A leftover job of a run taken over in-process (or the other way round) moves nothing: its driver does.
    else if (stored.driver === run.driver) await advance(run);
  }

  /** After a step failed for good: the run either ended (a required stage failed) or goes on without it. */
  async function afterFailure(run: MovedRun, stage: S, failure: RecordedFailure<S>): Promise<string> {
    if (failure.runFinished) {
      const message = await runs.userMessage(run.id);
      if (message) await threadOrder.afterRunFinished(message.threadId);
      return 'stage failed for good; the run failed';
    }
    if (failure.states) {
      const message = await runs.userMessage(run.id);
      if (message) await advance(run, { finished: [stage], states: failure.states, threadId: message.threadId, messageSeq: message.seq });
    } else {
      await advance(run);
    }
    return 'stage failed for good; the run goes on without it';
  }

  return { advance, resume, afterFailure };
}

export type Progression<S extends string = string> = {
  advance(run: MovedRun, from?: Transition<S> | { exclude?: S }): Promise<void>;
  resume(run: MovedRun): Promise<void>;
  afterFailure(run: MovedRun, stage: S, failure: RecordedFailure<S>): Promise<string>;
};
