/**
 * Decorators that count calls to third-party providers without changing what the providers do:
 * every call, its outcome (ok, error, rate_limited) and, for the LLM, the tokens it used. Calls
 * the caller aborted (a cancelled job) are not counted as errors — nor at all.
 */
import { StageError } from '../errors.js';
import type { LlmProvider } from '../stages/llm/llm.provider.js';
import type { ProviderOutcome } from './provider-stats.js';

export interface ProviderObserver {
  call(provider: string, outcome: ProviderOutcome, durationMs: number): void;
  tokens(provider: string, prompt: number, completion: number): void;
}

/** The LLM provider, counted under its own name (`openai`, `offline`). */
export function instrumentLlmProvider(provider: LlmProvider, observer: ProviderObserver): LlmProvider {
  return {
    name: provider.name,
    async complete(request, signal, onDelta) {
      const started = performance.now();
      try {
        const result = await provider.complete(request, signal, onDelta);
        observer.call(provider.name, 'ok', performance.now() - started);
        observer.tokens(provider.name, result.usage?.prompt_tokens ?? 0, result.usage?.completion_tokens ?? 0);
        return result;
      } catch (error) {
        if (!signal?.aborted) observer.call(provider.name, llmOutcome(error), performance.now() - started);
        throw error;
      }
    },
  };
}

/** A 429 that is a rate limit (to be waited out) rather than an exhausted quota (a permanent error). */
function llmOutcome(error: unknown): ProviderOutcome {
  return error instanceof StageError && error.code === 'rate_limited' ? 'rate_limited' : 'error';
}

/**
 * A `fetch` for an HTTP API client (RocketReach): each HTTP request is one call, so the 429s the
 * client waits out by itself are counted too. 429 is `rate_limited`; other 4xx (but 404, "no such
 * person") and 5xx answers, network failures and timeouts are errors.
 */
export function instrumentFetch(provider: string, observer: ProviderObserver, inner?: typeof fetch): typeof fetch {
  return async (input, init) => {
    const started = performance.now();
    try {
      const response = await (inner ?? globalThis.fetch)(input, init);
      const { status } = response;
      const outcome: ProviderOutcome = status === 429 ? 'rate_limited' : status >= 400 && status !== 404 ? 'error' : 'ok';
      observer.call(provider, outcome, performance.now() - started);
      return response;
    } catch (error) {
      // An abort by the caller is not the provider's failure; a deadline (TimeoutError) is.
      const signal = init?.signal;
      const timedOut = (signal?.reason as { name?: string } | undefined)?.name === 'TimeoutError';
      if (!signal?.aborted || timedOut) observer.call(provider, 'error', performance.now() - started);
      throw error;
    }
  };
}
