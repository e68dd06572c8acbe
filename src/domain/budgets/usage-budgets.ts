import { StageError } from '../errors.js';

/** What a daily budget meters: tokens of external LLM calls, and RocketReach lookups that reached the API. */
export type MeteredResource = 'llm_tokens' | 'rocketreach_lookups';

/** Where usage is counted, per organization and UTC day (PostgreSQL: org_usage). */
export interface UsageLedger {
  used(orgId: string, day: string, resource: MeteredResource): Promise<number>;
  add(orgId: string, day: string, resource: MeteredResource, amount: number): Promise<void>;
}

/** Daily limits: a default for every organization and per-organization overrides; none set is no budget. */
export interface BudgetLimits {
  perDay: Partial<Record<MeteredResource, number>>;
  byOrg: Readonly<Record<string, Partial<Record<MeteredResource, number>>>>;
}

export interface UsageBudgets {
  /** Throws a permanent `budget_exhausted` StageError when the organization has spent its budget for today. */
  ensureAvailable(orgId: string, resource: MeteredResource): Promise<void>;
  /** Counts what a call used; nothing when the organization has no budget for it. */
  record(orgId: string, resource: MeteredResource, amount: number): Promise<void>;
}

const WHAT: Record<MeteredResource, string> = { llm_tokens: 'LLM token', rocketreach_lookups: 'contact lookup' };

/**
 * Per-organization daily budgets of the metered providers, so that one organization's use cannot
 * spend what the others rely on. Checked before a call and counted after it: calls already under
 * way when the budget runs out still finish, so it can be overshot by what they use. An
 * organization without a limit costs no query.
 */
export function createUsageBudgets(deps: { ledger: UsageLedger; limits: BudgetLimits; now?: () => Date }): UsageBudgets {
  const now = deps.now ?? (() => new Date());
  const limitOf = (orgId: string, resource: MeteredResource): number | undefined => deps.limits.byOrg[orgId.toLowerCase()]?.[resource] ?? deps.limits.perDay[resource];
  const today = () => now().toISOString().slice(0, 10);

  return {
    async ensureAvailable(orgId, resource) {
      const limit = limitOf(orgId, resource);
      if (limit === undefined) return;
      const used = await deps.ledger.used(orgId, today(), resource);
      if (used >= limit) {
        throw new StageError('budget_exhausted', `The organization's daily ${WHAT[resource]} budget (${limit}) is spent; it renews at 00:00 UTC`, { permanent: true });
      }
    },
    async record(orgId, resource, amount) {
      if (limitOf(orgId, resource) === undefined || !(amount > 0)) return;
      await deps.ledger.add(orgId, today(), resource, Math.ceil(amount));
    },
  };
}

export function hasBudgets(limits: BudgetLimits): boolean {
  return Object.keys(limits.perDay).length > 0 || Object.keys(limits.byOrg).length > 0;
}
