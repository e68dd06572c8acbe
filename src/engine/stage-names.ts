import type { IntentResult, LlmResult, RagResult, RocketReachResult, SecurityResult } from '../domain/stages/types.js';

/**
 * The one list of stage names, with what each produces. A new stage adds a line here and an
 * entry in CATALOG (catalog.ts); everything else (order, queues, workers, settings, SQL) is derived.
 */
export interface StageResults {
  intent: IntentResult;
  security: SecurityResult;
  rag: RagResult;
  rocketreach: RocketReachResult;
  openai: LlmResult;
}

export type StageName = keyof StageResults;
