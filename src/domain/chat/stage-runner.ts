import { StageError } from '../errors.js';
import { PIPELINE } from '../pipeline.js';
import type { RagService } from '../stages/rag/rag.service.js';
import type {
  ChatTurn,
  IntentResult,
  LlmResult,
  RagResult,
  RocketReachResult,
  SecurityResult,
  StageName,
} from '../stages/types.js';
import type { IntentClassifier } from '../stages/intent/intent.service.js';
import type { RocketReachStage } from '../stages/rocketreach/rocketreach.stage.js';
import type { LlmStage } from '../stages/llm/llm.stage.js';
import type { RunsRepository, StepRecord } from '../../db/repositories/runs.repository.js';
import type { ThreadsRepository } from '../../db/repositories/threads.repository.js';
import type { StepErrorInfo } from '../../db/schema.js';

/** The five stage services, free of HTTP and queues; both drivers run them through the runner. */
export interface StageServices {
  intent: IntentClassifier;
  classifySecurity(text: string): SecurityResult;
  rag: RagService;
  rocketreach: RocketReachStage;
  llm: LlmStage;
}

export type StageOutcome =
  | { status: 'completed'; result: unknown }
  /** The step or its run was already finished (a re-delivered job, a cancelled run): nothing done. */
  | { status: 'already_finished' };

interface StageResults {
  intent?: IntentResult;
  security?: SecurityResult;
  rag?: RagResult;
  rocketreach?: RocketReachResult;
}

const HISTORY_TURNS = 20;

/**
 * Executes one stage of one run: claims the step, loads what the stage needs from PostgreSQL (the
 * message, the results of the stages it depends on), runs the stage service and stores its
 * result. Idempotent: a step already finished is not run again, and the reply is stored once.
 */
export function createStageRunner(deps: { runs: RunsRepository; threads: ThreadsRepository; stages: StageServices }) {
  const { runs, threads, stages } = deps;

  async function execute(runId: string, stage: StageName, signal?: AbortSignal): Promise<StageOutcome> {
    const step = await runs.startAttempt(runId, stage);
    if (!step) return { status: 'already_finished' };
    const run = await runs.getById(runId);
    const message = await runs.userMessage(runId);
    if (!run || !message) throw new StageError('run_missing', `run ${runId} has no user message`, { permanent: true });
    signal?.throwIfAborted();

    switch (stage) {
      case 'intent':
        return complete(runId, stage, await stages.intent.classify(message.content, signal));
      case 'security':
        return complete(runId, stage, stages.classifySecurity(message.content));
      case 'rag':
        return complete(runId, stage, await stages.rag.retrieve(run.orgId, message.content));
      case 'rocketreach': {
        const earlier = resultsOf(await runs.steps(runId));
        const wantsContacts = run.options.includeContactEnrichment !== false;
        const result: RocketReachResult = wantsContacts
          ? await stages.rocketreach.run({ orgId: run.orgId, intent: earlier.intent, contacts: run.options.contacts }, signal)
          : { status: 'skipped', contacts: [] };
        return complete(runId, stage, result);
      }
      case 'openai': {
        const earlier = resultsOf(await runs.steps(runId));
        const history = await loadHistory(message.threadId, message.seq);
        const result: LlmResult = await stages.llm.run(
          {
            rawContent: message.content,
            security: earlier.security,
            intent: earlier.intent,
            rag: earlier.rag,
            rocketreach: earlier.rocketreach,
            history,
          },
          signal,
        );
        signal?.throwIfAborted();
        const content = result.choices[0]?.message.content ?? '';
        const stored = await runs.completeWithReply(runId, stage, { orgId: run.orgId, threadId: run.threadId, content }, { ...result });
        if (!stored) return { status: 'already_finished' };
        return { status: 'completed', result: { ...result, assistantMessageId: stored.messageId } };
      }
    }
  }

  async function complete(runId: string, stage: StageName, result: unknown): Promise<StageOutcome> {
    const written = await runs.completeStep(runId, stage, result);
    return written ? { status: 'completed', result } : { status: 'already_finished' };
  }

  /** Earlier turns of the thread, with each user turn redacted: history goes to the LLM too. */
  async function loadHistory(threadId: string, beforeSeq: number): Promise<ChatTurn[]> {
    const turns = await threads.history(threadId, beforeSeq, HISTORY_TURNS);
    return turns.map((turn) => ({
      role: turn.role,
      content: turn.role === 'user' ? stages.classifySecurity(turn.content).redactedContent : turn.content,
    }));
  }

  /**
   * Records a failed attempt. A final failure of the LLM stage fails the run; a final failure of an
   * optional stage leaves the run going, and the reply is made from what is available.
   */
  async function recordFailure(runId: string, stage: StageName, error: unknown, final: boolean): Promise<void> {
    const info = describeError(error);
    await runs.failAttempt(runId, stage, info, final);
    if (final && !PIPELINE[stage].optional) await runs.finish(runId, 'failed', { code: info.code, message: `${stage}: ${info.message}` });
  }

  return { execute, recordFailure };
}

export type StageRunner = ReturnType<typeof createStageRunner>;

export function resultsOf(steps: StepRecord[]): StageResults {
  const results: StageResults = {};
  for (const step of steps) {
    if (step.status !== 'completed' || step.result == null) continue;
    if (step.stage === 'intent') results.intent = step.result as IntentResult;
    else if (step.stage === 'security') results.security = step.result as SecurityResult;
    else if (step.stage === 'rag') results.rag = step.result as RagResult;
    else if (step.stage === 'rocketreach') results.rocketreach = step.result as RocketReachResult;
  }
  return results;
}

/** What is stored and shown of an error: a stable code and a message, never a stack. */
export function describeError(error: unknown): StepErrorInfo {
  if (error instanceof StageError) return { code: error.code, message: error.message };
  if (error instanceof Error && error.name === 'AbortError') return { code: 'aborted', message: 'the job was aborted' };
  return { code: 'internal_error', message: error instanceof Error ? error.message.slice(0, 500) : 'unknown error' };
}

export function isPermanent(error: unknown): boolean {
  return error instanceof StageError && error.permanent;
}
