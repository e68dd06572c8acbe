import { decideAfterError, describeError } from './errors.js';
import type { EventEmitter } from './events/emitter.js';
import type { MovedRun, Progression } from './progression.js';
import type { AnyCatalog, StageOf } from './stage.js';
import type { Steps } from './steps.js';
import type { ThreadOrder } from './thread-order.js';

/** One delivery of a step's job, whichever driver carried it. */
export interface StepJob<S extends string> {
  run: MovedRun;
  stage: S;
  /** Attempts made before this one (BullMQ's attemptsMade; the in-process driver counts its own). */
  attemptsMade: number;
}

/** What the driver does next with the job. */
export type StepVerdict =
  /** `endedThread`: the step ended its run, and the caller moves the thread on (see `moveThreadOn`). */
  | { kind: 'done'; status: 'completed' | 'already_finished'; endedThread?: string }
  | { kind: 'retry'; delayMs: number; error: unknown }
  | { kind: 'final'; error: unknown; message: string }
  | { kind: 'pause'; ms: number }
  /** The job's signal fired (the run was cancelled or its caller went away): nothing recorded. */
  | { kind: 'aborted'; reason: unknown };

/**
 * THE step processor, called by both drivers: runs the step (load or claim, handler, store),
 * then moves the run on — its dependents, or the thread's next run once the reply is stored —
 * or, after a failed attempt, records it and answers whether to retry, pause or give up.
 */
export function createStepProcessor<C extends AnyCatalog>(deps: {
  catalog: C;
  steps: Steps<StageOf<C>>;
  progression: Progression<StageOf<C>>;
  threadOrder: ThreadOrder<StageOf<C>>;
  events?: EventEmitter;
}) {
  const { catalog, steps, progression, threadOrder, events } = deps;

  return async function processStep(job: StepJob<StageOf<C>>, signal: AbortSignal | undefined, options: StepOptions): Promise<StepVerdict> {
    const { run, stage } = job;
    try {
      const outcome = await steps.execute(run.id, stage, signal);
      // Done before (a re-delivered job after a crash): the crash may have come before the next
      // steps were sent, so move the run along again; sending twice adds nothing.
      if (outcome.status === 'already_finished') {
        await progression.resume(run);
        return { kind: 'done', status: 'already_finished' };
      }
      if (outcome.runFinished) {
        if (options.moveThreadOn === 'caller') return { kind: 'done', status: 'completed', endedThread: outcome.threadId };
        await threadOrder.afterRunFinished(outcome.threadId);
      } else await progression.advance(run, { finished: outcome.settled, states: outcome.states, threadId: outcome.threadId, messageSeq: outcome.messageSeq });
      return { kind: 'done', status: 'completed' };
    } catch (error) {
      if (signal?.aborted) return { kind: 'aborted', reason: signal.reason };
      const decision = decideAfterError(catalog[stage]!, error, job.attemptsMade, options);
      if (events) {
        // Before the failure is recorded: a final one ends the run, whose closing events come last.
        const info = describeError(error);
        const attempt = job.attemptsMade + 1;
        events.emit(
          run.id,
          decision.kind === 'final'
            ? { type: 'step', stage, status: 'failed', attempt, error: info }
            : { type: 'step', stage, status: 'retrying', attempt, delayMs: decision.kind === 'pause' ? decision.ms : decision.delayMs, error: info },
        );
        await events.flush();
      }
      const failure = await steps.recordFailure(run.id, stage, error, decision.kind === 'final');
      if (decision.kind === 'final') return { kind: 'final', error, message: await progression.afterFailure(run, stage, failure) };
      if (decision.kind === 'pause') return decision;
      return { kind: 'retry', delayMs: decision.delayMs, error };
    }
  };
}

export interface StepOptions {
  /** The driver can pause a whole stage for a provider's Retry-After (the queues). */
  canPause: boolean;
  /**
   * Who moves the thread on once the reply is stored: the processor before it answers (the
   * queues: a failure retries the job, whose re-delivery moves it on), or the caller, after it
   * has answered the run's own waiter (in-process: the reply is not held up by the next run).
   */
  moveThreadOn?: 'processor' | 'caller';
}

export type ProcessStep<S extends string = string> = (job: StepJob<S>, signal: AbortSignal | undefined, options: StepOptions) => Promise<StepVerdict>;
