import type { IntentResult, LlmResult, RagResult, RocketReachResult, SecurityResult } from '../../domain/stages/types.js';
import { LOCAL_GUARD } from '../../domain/stages/llm/llm.stage.js';
import { gateHistory } from '../../domain/chat/history-gate.js';
import { defineStage } from '../stage.js';

type Deps = { intent: IntentResult; security: SecurityResult; rag: RagResult; rocketreach: RocketReachResult };

/** The reply: the LLM, given only gated text, after every other stage and in the thread's order. */
export const openai = defineStage<'openai', LlmResult, Deps>({
  name: 'openai',
  queue: 'openai-processing',
  dependsOn: ['intent', 'security', 'rag', 'rocketreach'],
  attempts: 4,
  backoff: { baseDelayMs: 1_000 },
  concurrency: { default: 5, max: 500 },
  optional: false,
  callsOut: true,
  limiter: { env: 'OPENAI', max: 500, durationMs: 60_000, onlyWith: 'OPENAI_API_KEY' },
  historyTurns: 20,
  waitsForTurn: true,
  handle(input, { services, settings, signal, onToken }) {
    const { intent, security, rag, rocketreach } = input.results;
    const history = gateHistory(input.history, { classify: services.classifyTurn, tokenBudget: settings.historyTokenBudget });
    return services.llm.run({ rawContent: input.content, security, intent, rag, rocketreach, history }, signal, onToken);
  },
  reply: (result, input) => ({
    content: result.choices[0]?.message.content ?? '',
    guarded: result.provider === LOCAL_GUARD || keptFromModel(input.results.security),
  }),
});

/**
 * Whether the security verdict keeps a message from an external model: restricted, unsafe, or not
 * checked at all (the security stage failed, so the reply failed closed). Such an exchange is
 * stored as guarded whichever provider answered it — the in-process one answers everything — so
 * that it stays out of later history even once an external model is configured.
 */
function keptFromModel(security: SecurityResult | undefined): boolean {
  return !security || security.level === 'restricted' || !security.safe || security.promptInjection;
}
