import { createInlineDriver, type InlineDriver, type InlineDriverOptions } from './drivers/inline.js';
import { createQueuedDriver, type QueuedDriver } from './drivers/queued.js';
import type { JobRef, JobTransport } from './ports/job-transport.js';
import type { RunEndedBus } from './ports/run-ended-bus.js';
import type { RunStore } from './ports/run-store.js';
import { createStepProcessor, type ProcessStep } from './process-step.js';
import { createProgression, type MovedRun, type Progression } from './progression.js';
import type { StepStates } from './run.js';
import type { StageServices } from './services.js';
import type { AnyCatalog, StageOf, StageSettings } from './stage.js';
import { createSteps } from './steps.js';
import { createThreadOrder, type ThreadOrder } from './thread-order.js';
import type { RunEvents } from './ports/run-events.js';
import { createEventEmitter, type EventEmitter } from './events/emitter.js';

export interface EngineDeps<C extends AnyCatalog> {
  catalog: C;
  runs: RunStore<StageOf<C>>;
  /** The queues; the in-process driver is the engine's own. */
  transport: JobTransport<StageOf<C>>;
  services: StageServices;
  settings: StageSettings;
  /** A run driven in this process failed in a way no step could record (the store unreachable). */
  onError(error: unknown, runId: string): void;
  inline?: InlineDriverOptions;
  /** Runs ending in other processes: wakes replies waiting here for their turn (a slow poll remains the safety net). */
  bus?: RunEndedBus;
  /** The runs' event log: steps, tokens and each run's end are recorded in it (none: nothing is). */
  events?: RunEvents;
  /** The least time between two event appends of this process (default 50 ms). */
  eventFlushMs?: number;
}

/**
 * The pipeline engine: one step processor, one progression and one thread-order rule, driven
 * either by the queues (`queued`, consumed by the workers) or in this process (`inline`). Built
 * from a catalog passed in, so that any set of stages runs the same way.
 */
export function createEngine<C extends AnyCatalog>(deps: EngineDeps<C>): Engine<StageOf<C>> {
  type S = StageOf<C>;
  const { catalog, transport } = deps;
  const events = createEventEmitter(deps.events, {
    ...(deps.eventFlushMs === undefined ? {} : { flushMs: deps.eventFlushMs }),
    onError: (error) => deps.onError(error, 'events'),
  });
  const runs = announcingEnds(deps.runs, events);

  const steps = createSteps({ catalog, runs, stages: deps.services, settings: deps.settings, events });
  const threadOrder: ThreadOrder<S> = createThreadOrder({
    catalog,
    runs,
    // The thread's next run: the queues if they drive it, this process if it drives it here; a
    // run driven in another process notices by itself.
    async dispatch(next, stages) {
      if (next.driver === 'queue') await transport.enqueue(next.id, next.orgId, stages);
      else if (inline.holds(next.id)) await inline.send(next.id, stages);
    },
  });
  const inline: InlineDriver<S> = createInlineDriver({
    catalog,
    runs,
    processStep: () => processStep,
    afterRunFinished: (threadId) => threadOrder.afterRunFinished(threadId),
    onError: deps.onError,
    bus: deps.bus,
    ...(deps.inline ? { options: deps.inline } : {}),
  });
  const progression: Progression<S> = createProgression({
    catalog,
    runs,
    steps,
    threadOrder,
    dispatcher: {
      send: (run: MovedRun, stages) => (run.driver === 'queue' ? transport.enqueue(run.id, run.orgId, stages) : inline.send(run.id, stages)),
      notYourTurn(run, stages, thread) {
        if (run.driver === 'inline') inline.notYourTurn(run.id, stages, thread);
      },
    },
  });
  const processStep: ProcessStep<S> = createStepProcessor({ catalog, steps, progression, threadOrder, events });
  const queued = createQueuedDriver({ catalog, transport, progression, processStep: () => processStep });

  return {
    catalog,
    inline,
    queued,
    progression,
    threadOrder,
    processStep,
    events,

    async cancel(runId, reason, openJobs) {
      // Cancelling a run ends it: no reply is stored afterwards, and the thread's next run goes.
      if (!(await runs.finish(runId, 'cancelled', { code: 'cancelled', message: reason }))) return false;
      inline.abort(runId, reason);
      if (openJobs.length > 0 && transport.available()) await transport.cancel(openJobs, reason);
      try {
        const message = await runs.userMessage(runId);
        if (message) await threadOrder.afterRunFinished(message.threadId);
      } catch (error) {
        // The run is cancelled all the same; the reconciler moves the thread on if this could not.
        deps.onError(error, runId);
      }
      return true;
    },
  };
}

export interface Engine<S extends string = string> {
  catalog: AnyCatalog;
  inline: InlineDriver<S>;
  queued: QueuedDriver<S>;
  progression: Progression<S>;
  threadOrder: ThreadOrder<S>;
  processStep: ProcessStep<S>;
  /** The engine's event emitter (its buffered appends to the run event log). */
  events: EventEmitter;
  /**
   * Ends an open run as cancelled: stops it where it runs (in this process, or its open jobs in
   * the queues) and moves the thread's next run on. False when the run had ended already.
   */
  cancel(runId: string, reason: string, openJobs: ReadonlyArray<JobRef<S>>): Promise<boolean>;
}

/** A new run's step states: every included stage pending. */
export function pendingStates<S extends string>(stages: readonly S[]): StepStates<S> {
  return Object.fromEntries(stages.map((stage) => [stage, 'pending'])) as StepStates<S>;
}

/**
 * The run store, telling the event log's subscribers when a run has ended: the statements that
 * end a run write its closing events themselves, without a notification (which would serialise
 * their commits), so it is sent afterwards by the event log's own relaxed statement.
 */
function announcingEnds<S extends string>(runs: RunStore<S>, events: EventEmitter): RunStore<S> {
  // Every other method is the store's own, looked up on each call (the store is the prototype).
  const wrapped: RunStore<S> = Object.create(runs);
  return Object.assign(wrapped, {
    async completeWithReply(...args: Parameters<RunStore<S>['completeWithReply']>) {
      const stored = await runs.completeWithReply(...args);
      if (stored) events.announce(args[0]);
      return stored;
    },
    async finish(...args: Parameters<RunStore<S>['finish']>) {
      const finished = await runs.finish(...args);
      if (finished) events.announce(args[0]);
      return finished;
    },
  });
}
