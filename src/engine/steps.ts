import type { StageName } from './stage-names.js';
import { describeError } from './errors.js';
import type { RunStore, StepCompletion } from './ports/run-store.js';
import type { LoadedStep, StepStates } from './run.js';
import type { StageServices } from './services.js';
import { stageInput, type AnyCatalog, type StageContext, type StageOf, type StageSettings } from './stage.js';
import { createEventEmitter, type EventEmitter, type TokenSink } from './events/emitter.js';
import { completedEvent, startedEvent } from './events/grammar.js';

export type StageOutcome<S extends string = StageName> =
  /**
   * `settled`: the finished steps whose dependents this caller moves along (itself and a dependent
   * it could settle at once, or none when another caller completing the same run at the same
   * time acts for both); `states`: every step's state after them. `runFinished` for the reply.
   */
  | { status: 'completed'; settled: S[]; states: StepStates<S>; runFinished: boolean; threadId: string; messageSeq: number }
  /** The step or its run was already finished (a re-delivered job, a cancelled run): nothing done. */
  | { status: 'already_finished' };

/**
 * The store side of a step, for both drivers. `execute` runs one stage of one run: claims the step and loads what the stage needs (the message, the
 * results of the stages it depends on) in one statement, runs the stage's handler and stores its
 * result. Idempotent: a step already finished is not run again, and the reply is stored once.
 */
export function createSteps<C extends AnyCatalog>(deps: {
  catalog: C;
  runs: RunStore<StageOf<C>>;
  stages: StageServices;
  settings: StageSettings;
  /** The emitter of the run's event log (tokens; whether the step statements write events); none: no events. */
  events?: EventEmitter;
}) {
  type S = StageOf<C>;
  const { catalog, runs } = deps;
  const events = deps.events ?? createEventEmitter(undefined);
  const context = (signal?: AbortSignal, tokens?: TokenSink): StageContext => ({
    services: deps.stages,
    settings: deps.settings,
    signal,
    ...(tokens ? { onToken: (text: string) => tokens.token(text) } : {}),
  });

  async function execute(runId: string, stage: S, signal?: AbortSignal, lease?: string): Promise<StageOutcome<S>> {
    const definition = catalog[stage]!;
    // A stage that calls out records its attempt (and its `started` event) before the call; a
    // local one is written once, at its end, with both its events.
    const step = definition.callsOut
      ? await runs.claimStep(runId, stage, {
          ...(definition.historyTurns ? { historyTurns: definition.historyTurns } : {}),
          ...(lease ? { lease } : {}),
          ...(events.enabled ? { started: true } : {}),
        })
      : await runs.loadStep(runId, stage, lease);
    if (!step) return { status: 'already_finished' };
    signal?.throwIfAborted();
    const tokens = definition.reply ? events.tokens(runId, stage, step.attempts) : undefined;
    const result = await definition.handle(stageInput(step), context(signal, tokens));
    signal?.throwIfAborted();
    return store(step, result, lease, { started: definition.callsOut, tokens });
  }

  /**
   * Runs a step here and now if its stage can settle it without an external call (settleLocally),
   * so that no job (and no rate-limit slot) is spent on it. Answers `needs_queue` otherwise,
   * leaving the step as it was.
   */
  async function executeIfLocal(runId: string, stage: S, lease?: string): Promise<StageOutcome<S> | 'needs_queue'> {
    const definition = catalog[stage]!;
    if (!definition.settleLocally) return 'needs_queue';
    // Read without writing: concurrent callers may both compute it, and its result is stored once.
    const step = await runs.loadStep(runId, stage, lease);
    if (!step) return { status: 'already_finished' };
    const settled = definition.settleLocally(stageInput(step), context());
    if (!settled) return 'needs_queue';
    return store(step, await settled, lease);
  }

  /**
   * Stores a step's result with its events, in the same statement, before the run moves on:
   * its `started` first when no claim wrote it, then `completed`. The reply statement writes,
   * before its closing events, what the run still has buffered in the emitter (its `started`,
   * its last tokens); a reply that was not streamed is one token event, so that a run's tokens
   * always add up to its reply.
   */
  async function store(
    step: LoadedStep<S>,
    result: unknown,
    lease: string | undefined,
    emitted: { started: boolean; tokens?: TokenSink | undefined } = { started: false },
  ): Promise<StageOutcome<S>> {
    const { runId, stage } = step;
    const definition = catalog[stage]!;
    if (definition.reply) {
      const reply = definition.reply(result, stageInput(step));
      if (!emitted.started) events.emit(runId, startedEvent(stage, step.attempts), { defer: true });
      const tokens = emitted.tokens ?? events.tokens(runId, stage, step.attempts);
      if (!tokens.streamed) tokens.token(reply.content);
      // Once the run's appends in flight are stored, what is left goes with the reply and its closing events.
      const buffered = await events.take(runId);
      const stored = await runs.completeWithReply(runId, stage, reply.content, result, {
        guarded: reply.guarded,
        ...(lease ? { lease } : {}),
        ...(buffered.length > 0 ? { events: buffered } : {}),
      });
      if (!stored) return { status: 'already_finished' };
      return { status: 'completed', settled: [stage], states: {}, runFinished: true, threadId: step.threadId, messageSeq: step.messageSeq };
    }
    const followUps = await settleAtOnce(step, result);
    const completions: StepCompletion<S>[] = [
      withEvents({ stage, result, loadedAt: step.loadedAt }, emitted.started ? undefined : step.attempts),
      ...followUps.map((followUp) => withEvents(followUp, 1)),
    ];
    const { written, settled, states } = await runs.completeSteps(runId, completions, lease);
    if (!written.includes(stage)) return { status: 'already_finished' };
    return { status: 'completed', settled, states, runFinished: false, threadId: step.threadId, messageSeq: step.messageSeq };
  }

  /** A completion with its events when they are recorded: `started` (of attempt `startedAttempt`, if given), `completed`. */
  function withEvents(completion: StepCompletion<S>, startedAttempt: number | undefined): StepCompletion<S> {
    if (!events.enabled) return completion;
    const { stage, result } = completion;
    const completed = completedEvent(stage, result);
    return { ...completion, events: startedAttempt === undefined ? [completed] : [startedEvent(stage, startedAttempt), completed] };
  }

  /**
   * The dependents that this result lets be settled without an external call — each pending
   * stage whose only dependency in the run is this step (apart from those it settles without,
   * `settlesWithout`), and whose settleLocally answers — are
   * stored in the same statement as this step, rather than spending a job or a read on them.
   */
  async function settleAtOnce(step: LoadedStep<S>, result: unknown): Promise<StepCompletion<S>[]> {
    const states = step.states as Partial<Record<string, string>>;
    const followUps: StepCompletion<S>[] = [];
    for (const name of Object.keys(catalog) as S[]) {
      const dependent = catalog[name]!;
      if (!dependent.settleLocally || states[name] !== 'pending' || !dependent.dependsOn.includes(step.stage)) continue;
      if (dependent.dependsOn.some((dep) => dep !== step.stage && states[dep] !== undefined && !dependent.settlesWithout?.includes(dep))) continue;
      const loadedAt = new Date();
      const input = stageInput<Record<string, unknown>>({
        ...step,
        stage: name,
        results: { [step.stage]: result } as LoadedStep<S>['results'],
        attempts: 1,
        maxAttempts: dependent.attempts,
      });
      const settled = dependent.settleLocally(input, context());
      if (settled) followUps.push({ stage: name, result: await settled, loadedAt });
    }
    return followUps;
  }

  /**
   * Records a failed attempt. A final failure of a required stage fails the run; a final failure
   * of an optional stage leaves the run going, and the reply is made from what is available.
   */
  async function recordFailure(runId: string, stage: S, error: unknown, final: boolean, lease?: string): Promise<RecordedFailure<S>> {
    const info = describeError(error);
    const { written, states } = await runs.failAttempt(runId, stage, info, final, lease);
    // Not written: the step ended meanwhile, or another process holds the run; neither is this caller's to fail.
    if (final && written && !catalog[stage]!.optional) {
      await runs.finish(runId, 'failed', { code: info.code, message: `${stage}: ${info.message}` });
      return { runFinished: true, states };
    }
    return { runFinished: false, states };
  }

  return { execute, executeIfLocal, recordFailure };
}

export type Steps<S extends string = StageName> = {
  execute(runId: string, stage: S, signal?: AbortSignal, lease?: string): Promise<StageOutcome<S>>;
  executeIfLocal(runId: string, stage: S, lease?: string): Promise<StageOutcome<S> | 'needs_queue'>;
  recordFailure(runId: string, stage: S, error: unknown, final: boolean, lease?: string): Promise<RecordedFailure<S>>;
};

/** After a failed attempt: whether the run ended, and (for a final failure) the run's step states. */
export interface RecordedFailure<S extends string = StageName> {
  runFinished: boolean;
  states: StepStates<S> | null;
}
