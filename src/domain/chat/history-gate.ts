import type { ChatTurn, SecurityResult } from '../stages/types.js';
import { estimateMessageTokens, estimateTokens, truncateToTokens } from '../stages/llm/token-estimate.js';

/** A stored turn of the thread, with the number of the exchange (question and reply) it belongs to. */
export interface StoredTurn extends ChatTurn {
  turn: number;
}

export interface HistoryGateOptions {
  classify(text: string): SecurityResult;
  /** The most tokens (see token-estimate.ts) the history may take in a prompt; 0 sends none. */
  tokenBudget: number;
}

/** What the security check says must not reach an external model, even redacted. */
function isBlocked(security: SecurityResult): boolean {
  return security.level === 'restricted' || !security.safe || security.promptInjection;
}

/**
 * Earlier turns of a thread as they may go to the LLM, oldest first. Guarded exchanges are already
 * left out by the query; every remaining turn, the user's and the assistant's, goes through the
 * same detectors as the new message and is sent redacted. A user turn that the detectors would
 * block (restricted, unsafe, an injection) takes its whole exchange with it, since the reply may
 * echo it; a blocked reply goes alone, and so does a reply without its question. Then whole
 * exchanges are kept, newest first, while they fit the token budget, so a long thread cannot grow
 * the prompt past the model's context; the first exchange that does not fit ends the history,
 * keeping what is sent contiguous — unless it is the newest, which is shortened to the budget.
 */
export function gateHistory(turns: readonly StoredTurn[], options: HistoryGateOptions): ChatTurn[] {
  if (options.tokenBudget <= 0 || turns.length === 0) return [];
  const exchanges: ChatTurn[][] = [];
  let current: { turn: number; turns: ChatTurn[]; dropped: boolean } | undefined;
  const close = (): void => {
    if (current && !current.dropped && current.turns.length > 0) exchanges.push(current.turns);
  };
  for (const stored of turns) {
    if (!current || current.turn !== stored.turn) {
      close();
      // A reply whose question fell outside the query's row limit goes with it: it is unchecked context.
      current = { turn: stored.turn, turns: [], dropped: stored.role !== 'user' };
    }
    if (current.dropped) continue;
    const security = options.classify(stored.content);
    if (isBlocked(security)) {
      if (stored.role === 'user') current.dropped = true;
      continue;
    }
    current.turns.push({ role: stored.role, content: security.redactedContent });
  }
  close();

  const kept: ChatTurn[][] = [];
  let used = 0;
  for (let i = exchanges.length - 1; i >= 0; i--) {
    const exchange = exchanges[i]!;
    const cost = costOf(exchange);
    if (used + cost > options.tokenBudget) {
      // The last exchange is the one the new message most likely follows up: shortened, not lost.
      if (kept.length === 0) {
        const shortened = shorten(exchange, options.tokenBudget);
        if (shortened.length > 0) kept.push(shortened);
      }
      break;
    }
    used += cost;
    kept.push(exchange);
  }
  return kept.reverse().flat();
}

function costOf(turns: readonly ChatTurn[]): number {
  return turns.reduce((sum, turn) => sum + estimateMessageTokens(turn.content), 0);
}

/**
 * Cuts an exchange to the budget: the question first (a pasted document is the usual bulk), then
 * the reply, each keeping its start. Empty when not even the framing fits.
 */
function shorten(exchange: readonly ChatTurn[], budget: number): ChatTurn[] {
  const turns = exchange.map((turn) => ({ ...turn }));
  for (const turn of [...turns].sort((a, b) => (a.role === b.role ? 0 : a.role === 'user' ? -1 : 1))) {
    const excess = costOf(turns) - budget;
    if (excess <= 0) break;
    turn.content = truncateToTokens(turn.content, Math.max(0, estimateTokens(turn.content) - excess));
  }
  const kept = turns.filter((turn) => turn.content !== '');
  // A reply is not sent without its question.
  return costOf(kept) <= budget && kept[0]?.role === 'user' ? kept : [];
}
