import type { IntentResult, RocketReachResult } from '../../domain/stages/types.js';
import type { RocketReachStageInput } from '../../domain/stages/rocketreach/rocketreach.stage.js';
import { defineStage, type StageInput } from '../stage.js';

type Deps = { intent: IntentResult };

/**
 * Contact lookup. It needs no call — nothing asked for, no key configured, enrichment switched
 * off — far more often than not, and then it is settled locally with the step that let it go.
 */
export const rocketreach = defineStage<'rocketreach', RocketReachResult, Deps>({
  name: 'rocketreach',
  queue: 'rocketreach-api',
  dependsOn: ['intent'],
  attempts: 4,
  backoff: { baseDelayMs: 2_000 },
  concurrency: { default: 2, max: 100 },
  optional: true,
  callsOut: true,
  limiter: { env: 'ROCKETREACH', max: 10, durationMs: 1_000, globalConcurrency: { default: 2, max: 100 } },
  settleLocally(input, { services }) {
    if (input.run.options.includeContactEnrichment === false) return Promise.resolve({ status: 'skipped', contacts: [] });
    const request = lookupOf(input);
    return services.rocketreach.needsApi(request) ? undefined : services.rocketreach.run(request);
  },
  handle(input, { services, signal }) {
    if (input.run.options.includeContactEnrichment === false) return Promise.resolve({ status: 'skipped', contacts: [] });
    return services.rocketreach.run(lookupOf(input), signal);
  },
});

function lookupOf(input: StageInput<Deps>): RocketReachStageInput {
  const { orgId, options } = input.run;
  return { orgId, intent: input.results.intent, ...(options.contacts ? { contacts: options.contacts } : {}) };
}
