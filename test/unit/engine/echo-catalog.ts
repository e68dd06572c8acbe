import { CATALOG } from '../../../src/engine/catalog.js';
import { defineStage } from '../../../src/engine/stage.js';

/** A throw-away sixth stage, and the LLM depending on it: the catalog is all that changes. */
export function catalogWithEcho(seen: unknown[]) {
  const echo = defineStage<'echo', { echoed: string; length: number }>({
    name: 'echo',
    queue: 'echo-processing',
    dependsOn: ['security'],
    attempts: 2,
    backoff: { baseDelayMs: 1 },
    concurrency: { default: 2, max: 10 },
    optional: true,
    callsOut: false,
    handle: async (input) => ({ echoed: input.content.toUpperCase(), length: input.content.length }),
  });
  return {
    ...CATALOG,
    echo,
    openai: {
      ...CATALOG.openai,
      dependsOn: [...CATALOG.openai.dependsOn, 'echo'],
      handle(input: Parameters<typeof CATALOG.openai.handle>[0], ctx: Parameters<typeof CATALOG.openai.handle>[1]) {
        seen.push((input.results as Record<string, unknown>).echo);
        return CATALOG.openai.handle(input, ctx);
      },
    },
  };
}
