import { MinuteRing } from './minute-ring.js';
import { HTTP_STATS_MINUTES } from './http-stats.js';

/** How one call to a third-party provider ended. */
export type ProviderOutcome = 'ok' | 'error' | 'rate_limited';

export interface ProviderCallFigures {
  calls: number;
  ok: number;
  errors: number;
  /** Answers with HTTP 429 (rate limited), counted apart from errors. */
  rateLimited: number;
  promptTokens: number;
  completionTokens: number;
}

type Minute = Map<string, ProviderCallFigures>;

const empty = (): ProviderCallFigures => ({ calls: 0, ok: 0, errors: 0, rateLimited: 0, promptTokens: 0, completionTokens: 0 });

/**
 * Calls this process made to third-party providers (the LLM, RocketReach), per minute for 24 h.
 * Fed by the decorators in instrumented-providers.ts.
 */
export function createProviderStats(options: { now?: () => number } = {}) {
  const ring = new MinuteRing<Minute>(HTTP_STATS_MINUTES, () => new Map(), options.now);
  const entry = (provider: string): ProviderCallFigures => {
    const minute = ring.current();
    let figures = minute.get(provider);
    if (!figures) minute.set(provider, (figures = empty()));
    return figures;
  };
  return {
    call(provider: string, outcome: ProviderOutcome): void {
      const figures = entry(provider);
      figures.calls += 1;
      if (outcome === 'ok') figures.ok += 1;
      else if (outcome === 'error') figures.errors += 1;
      else figures.rateLimited += 1;
    },

    tokens(provider: string, prompt: number, completion: number): void {
      const figures = entry(provider);
      figures.promptTokens += prompt;
      figures.completionTokens += completion;
    },

    /** Per provider; `errorRate` = errors / calls and `rateLimitedRate` = 429s / calls. */
    summary(rangeMinutes: number): Record<string, ProviderCallFigures & { errorRate: number; rateLimitedRate: number }> {
      const out: Record<string, ProviderCallFigures> = {};
      for (const { bucket } of ring.last(rangeMinutes)) {
        for (const [provider, figures] of bucket) {
          const into = (out[provider] ??= empty());
          into.calls += figures.calls;
          into.ok += figures.ok;
          into.errors += figures.errors;
          into.rateLimited += figures.rateLimited;
          into.promptTokens += figures.promptTokens;
          into.completionTokens += figures.completionTokens;
        }
      }
      return Object.fromEntries(
        Object.entries(out).map(([provider, f]) => [provider, { ...f, errorRate: ratio(f.errors, f.calls), rateLimitedRate: ratio(f.rateLimited, f.calls) }]),
      );
    },
  };
}

const ratio = (part: number, whole: number): number => (whole ? Math.round((part / whole) * 10_000) / 10_000 : 0);

export type ProviderStats = ReturnType<typeof createProviderStats>;
