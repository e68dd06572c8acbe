import { StageError } from '../errors.js';
import { CATALOG } from '../../engine/catalog.js';
import type { RagService } from '../stages/rag/rag.service.js';
import type { IntentResult, RagResult, RocketReachResult, SecurityResult } from '../stages/types.js';
import type { StageName } from '../../engine/catalog.js';
import type { IntentClassifier } from '../stages/intent/intent.service.js';
import type { RocketReachStage, RocketReachStageInput } from '../stages/rocketreach/rocketreach.stage.js';
import type { LlmStage } from '../stages/llm/llm.stage.js';
import type { RunsRepository } from '../../db/repositories/runs.repository.js';
import type { LoadedStep, StepStates } from '../../engine/run.js';
import type { StepError } from '../../engine/run.js';
import { LOCAL_GUARD } from '../stages/llm/llm.stage.js';
import { gateHistory } from './history-gate.js';
import { safeErrorMessage } from '../../logger.js';

/** The five stage services, free of HTTP and queues; both drivers run them through the runner. */
export interface StageServices {
  intent: IntentClassifier;
  classifySecurity(text: string): SecurityResult;
  rag: RagService;
  rocketreach: RocketReachStage;
  llm: LlmStage;
}

export type StageOutcome =
  /**
   * `settled`: the finished steps whose dependents this caller moves along (itself and a dependent
   * it could settle at once, or none when another caller completing the same run at the same
   * time acts for both); `states`: every step's state after them. `runFinished` for the reply.
   */
  | { status: 'completed'; settled: StageName[]; states: StepStates; runFinished: boolean; threadId: string; messageSeq: number }
  /** The step or its run was already finished (a re-delivered job, a cancelled run): nothing done. */
  | { status: 'already_finished' };

/** The most stored turns (messages) read as history; the token budget then trims them further. */
const HISTORY_TURNS = 20;

export interface StageRunnerOptions {
  /** The most tokens the thread's earlier turns may take in an LLM prompt (see history-gate.ts). */
  historyTokenBudget: number;
}

/**
 * Executes one stage of one run: claims the step and loads what the stage needs (the message, the
 * results of the stages it depends on) in one statement, runs the stage service and stores its
 * result. Idempotent: a step already finished is not run again, and the reply is stored once.
 */
export function createStageRunner(deps: { runs: RunsRepository; stages: StageServices; options: StageRunnerOptions }) {
  const { runs, stages } = deps;
  const { historyTokenBudget } = deps.options;

  async function execute(runId: string, stage: StageName, signal?: AbortSignal): Promise<StageOutcome> {
    // A stage that calls out records its attempt before the call; a local one is written once, at its end.
    const step = CATALOG[stage].callsOut
      ? await runs.claimStep(runId, stage, stage === 'openai' ? { historyTurns: HISTORY_TURNS } : {})
      : await runs.loadStep(runId, stage);
    if (!step) return { status: 'already_finished' };
    return finish(step, signal);
  }

  /**
   * Runs a step here and now if it needs no external call — a contact lookup that is not asked
   * for or not configured — so that no job (and no rate-limit slot) is spent on it. Answers
   * `needs_queue` otherwise, leaving the step as it was.
   */
  async function executeIfLocal(runId: string, stage: StageName): Promise<StageOutcome | 'needs_queue'> {
    if (stage !== 'rocketreach') return 'needs_queue';
    // Read without writing: concurrent callers may both compute it, and its result is stored once.
    const step = await runs.loadStep(runId, stage);
    if (!step) return { status: 'already_finished' };
    if (stages.rocketreach.needsApi(rocketreachInput(step))) return 'needs_queue';
    return finish(step);
  }

  async function finish(step: LoadedStep, signal?: AbortSignal): Promise<StageOutcome> {
    const { runId, stage } = step;
    signal?.throwIfAborted();
    const result = await compute(step, signal);
    signal?.throwIfAborted();
    if (stage === 'openai') {
      const llm = result as Record<string, unknown> & { choices: Array<{ message: { content: string } }>; provider?: unknown };
      const guarded = llm.provider === LOCAL_GUARD || keptFromModel((step.results as { security?: SecurityResult }).security);
      const stored = await runs.completeWithReply(runId, stage, llm.choices[0]?.message.content ?? '', llm, { guarded });
      if (!stored) return { status: 'already_finished' };
      return { status: 'completed', settled: [stage], states: {}, runFinished: true, threadId: step.threadId, messageSeq: step.messageSeq };
    }
    const completions: Array<{ stage: StageName; result: unknown; loadedAt: Date | undefined }> = [{ stage, result, loadedAt: step.loadedAt }];
    const followUp = await settleAtOnce(step, result);
    if (followUp) completions.push(followUp);
    const { written, settled, states } = await runs.completeSteps(runId, completions);
    if (!written.includes(stage)) return { status: 'already_finished' };
    return { status: 'completed', settled, states, runFinished: false, threadId: step.threadId, messageSeq: step.messageSeq };
  }

  /**
   * A dependent step that this result lets be settled without an external call — the contact
   * lookup, once the intent is known, when no lookup is asked for or no key is configured — is
   * stored in the same statement as this step, rather than spending a job or a read on it.
   */
  async function settleAtOnce(step: LoadedStep, result: unknown): Promise<{ stage: StageName; result: unknown; loadedAt: Date } | undefined> {
    if (step.stage !== 'intent' || step.states.rocketreach !== 'pending') return undefined;
    const loadedAt = new Date();
    const dependent: LoadedStep = { ...step, stage: 'rocketreach', results: { intent: result }, attempts: 1, maxAttempts: CATALOG.rocketreach.attempts };
    if (stages.rocketreach.needsApi(rocketreachInput(dependent))) return undefined;
    return { stage: 'rocketreach', result: await compute(dependent), loadedAt };
  }

  async function compute(step: LoadedStep, signal?: AbortSignal): Promise<unknown> {
    const earlier = step.results as { intent?: IntentResult; security?: SecurityResult; rag?: RagResult; rocketreach?: RocketReachResult };
    switch (step.stage) {
      case 'intent':
        return stages.intent.classify(step.content, signal);
      case 'security':
        return stages.classifySecurity(step.content);
      case 'rag':
        return stages.rag.retrieve(step.orgId, step.content);
      case 'rocketreach':
        return step.options.includeContactEnrichment === false
          ? ({ status: 'skipped', contacts: [] } satisfies RocketReachResult)
          : stages.rocketreach.run(rocketreachInput(step), signal);
      case 'openai':
        return stages.llm.run(
          {
            rawContent: step.content,
            security: earlier.security,
            intent: earlier.intent,
            rag: earlier.rag,
            rocketreach: earlier.rocketreach,
            history: gateHistory(step.history ?? [], { classify: stages.classifySecurity, tokenBudget: historyTokenBudget }),
          },
          signal,
        );
    }
  }

  function rocketreachInput(step: LoadedStep): RocketReachStageInput {
    const intent = (step.results as { intent?: IntentResult }).intent;
    // Contact enrichment switched off: no contacts asked for, and the intent is not consulted.
    if (step.options.includeContactEnrichment === false) return { orgId: step.orgId, intent: undefined };
    return { orgId: step.orgId, intent, ...(step.options.contacts ? { contacts: step.options.contacts } : {}) };
  }

  /**
   * Records a failed attempt. A final failure of the LLM stage fails the run; a final failure of an
   * optional stage leaves the run going, and the reply is made from what is available.
   */
  async function recordFailure(runId: string, stage: StageName, error: unknown, final: boolean): Promise<RecordedFailure> {
    const info = describeError(error);
    const { states } = await runs.failAttempt(runId, stage, info, final);
    if (final && !CATALOG[stage].optional) {
      await runs.finish(runId, 'failed', { code: info.code, message: `${stage}: ${info.message}` });
      return { runFinished: true, states };
    }
    return { runFinished: false, states };
  }

  return { execute, executeIfLocal, recordFailure };
}

export type StageRunner = ReturnType<typeof createStageRunner>;

/**
 * Whether the security verdict keeps a message from an external model: restricted, unsafe, or not
 * checked at all (the security stage failed, so the reply failed closed). Such an exchange is
 * stored as guarded whichever provider answered it — the in-process one answers everything — so
 * that it stays out of later history even once an external model is configured.
 */
function keptFromModel(security: SecurityResult | undefined): boolean {
  return !security || security.level === 'restricted' || !security.safe || security.promptInjection;
}

/** After a failed attempt: whether the run ended, and (for a final failure) the run's step states. */
export interface RecordedFailure {
  runFinished: boolean;
  states: StepStates | null;
}

/** What is stored and shown of an error: a stable code and a message, never a stack. */
export function describeError(error: unknown): StepError {
  if (error instanceof StageError) return { code: error.code, message: error.message };
  if (error instanceof Error && (error.name === 'AbortError' || error.name === 'APIUserAbortError')) {
    return { code: 'aborted', message: 'the job was aborted' };
  }
  // Shown in batch results and failed-job lists: a database error's values (the user's text) stay out.
  return { code: 'internal_error', message: safeErrorMessage(error).slice(0, 500) };
}

export function isPermanent(error: unknown): boolean {
  return error instanceof StageError && error.permanent;
}
