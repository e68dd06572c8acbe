import type { IntentResult, RocketReachResult, SecurityResult } from '../../domain/stages/types.js';
import { keptFromExternal, skippedFor, type RocketReachStageInput } from '../../domain/stages/rocketreach/rocketreach.stage.js';
import type { StageServices } from '../services.js';
import { defineStage, type StageInput } from '../stage.js';

type Deps = { intent: IntentResult; security: SecurityResult };

/**
 * Contact lookup. It needs no call — nothing asked for, no key configured, enrichment switched
 * off — far more often than not, and then it is settled locally with the intent step, before the
 * security verdict (nothing leaves the server). A lookup that would call RocketReach waits for the
 * verdict: a message kept from external models, or one never checked, sends nothing out either.
 */
export const rocketreach = defineStage<'rocketreach', RocketReachResult, Deps>({
  name: 'rocketreach',
  queue: 'rocketreach-api',
  dependsOn: ['intent', 'security'],
  settlesWithout: ['security'],
  attempts: 4,
  backoff: { baseDelayMs: 2_000 },
  concurrency: { default: 2, max: 100 },
  optional: true,
  callsOut: true,
  limiter: { env: 'ROCKETREACH', max: 10, durationMs: 1_000, globalConcurrency: { default: 2, max: 100 } },
  settleLocally(input, { services }) {
    if (input.run.options.includeContactEnrichment === false) return Promise.resolve({ status: 'skipped', contacts: [] });
    const request = lookupOf(input);
    if (!services.rocketreach.needsApi(request)) return services.rocketreach.run(request);
    // Settled with the intent step, the verdict is not known yet; after it, a blocked message needs no job.
    const { security } = input.results;
    return security && keptFromExternal(security) ? Promise.resolve(skippedFor('message_blocked')) : undefined;
  },
  handle(input, { services, signal }) {
    if (input.run.options.includeContactEnrichment === false) return Promise.resolve({ status: 'skipped', contacts: [] });
    const request = lookupOf(input);
    if (!services.rocketreach.needsApi(request)) return services.rocketreach.run(request, signal);
    // Every dependency has finished here: no verdict means the security stage failed, and the lookup fails closed.
    const { security } = input.results;
    if (!security) return Promise.resolve(skippedFor('security_unavailable'));
    if (keptFromExternal(security)) return Promise.resolve(skippedFor('message_blocked'));
    return lookUp(input, request, services, signal);
  },
});

/** A lookup that reaches the API, within the organization's daily budget of lookups (one per call not served from the cache). */
async function lookUp(input: StageInput<Deps>, request: RocketReachStageInput, services: StageServices, signal?: AbortSignal): Promise<RocketReachResult> {
  const { orgId } = input.run;
  await services.budgets?.ensureAvailable(orgId, 'rocketreach_lookups');
  const result = await services.rocketreach.run(request, signal);
  if (!result.cached && result.status !== 'skipped') await services.budgets?.record(orgId, 'rocketreach_lookups', 1);
  return result;
}

function lookupOf(input: StageInput<Deps>): RocketReachStageInput {
  const { orgId, options } = input.run;
  return { orgId, intent: input.results.intent, ...(options.contacts ? { contacts: options.contacts } : {}) };
}
