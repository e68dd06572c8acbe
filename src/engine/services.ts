import type { UsageBudgets } from '../domain/budgets/usage-budgets.js';
import type { IntentClassifier } from '../domain/stages/intent/intent.service.js';
import type { LlmStage } from '../domain/stages/llm/llm.stage.js';
import type { RagService } from '../domain/stages/rag/rag.service.js';
import type { RocketReachStage } from '../domain/stages/rocketreach/rocketreach.stage.js';
import type { SecurityResult } from '../domain/stages/types.js';

/** The stage services, free of HTTP and queues, built once (container.ts); a new stage with a service adds a field. */
export interface StageServices {
  intent: IntentClassifier;
  classifySecurity(text: string): SecurityResult;
  /** The same detectors for earlier turns of a thread, which come back with every message (their verdicts may be remembered). */
  classifyTurn(text: string): SecurityResult;
  rag: RagService;
  rocketreach: RocketReachStage;
  llm: LlmStage;
  /** Per-organization daily budgets of the metered providers; absent: none. */
  budgets?: UsageBudgets;
}
