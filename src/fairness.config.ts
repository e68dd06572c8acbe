import { z } from 'zod';
import type { BudgetLimits } from './domain/budgets/usage-budgets.js';

/** The fairness settings (README "Fairness"): validated with the rest of the configuration in config.ts. */
export interface FairnessConfig {
  /** Off: every stage's queue is first in, first out, as before. */
  enabled: boolean;
  /** How far each job pushes its organization's next job of the same stage back, at weight 1. */
  jobCostMs: number;
  /** The furthest ahead of now an organization's backlog is tagged. */
  maxLeadMs: number;
  /** Organizations' shares by id; the others have 1. */
  weights: Readonly<Record<string, number>>;
  /** Daily budgets of the metered providers per organization (none by default). */
  budgets: BudgetLimits;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `<organization id>=<number>` pairs separated by commas, each number within [min, max]. */
function pairsSchema(min: number, max: number, what: string) {
  return z
    .string()
    .trim()
    .default('')
    .transform((value, ctx) => {
      const pairs: Record<string, number> = {};
      for (const pair of value.split(',').map((p) => p.trim()).filter(Boolean)) {
        const [id, raw] = pair.split('=').map((p) => p.trim());
        const n = Number(raw);
        if (!id || !UUID.test(id) || !raw || !Number.isFinite(n) || n < min || n > max) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be <organization id>=<${what}> pairs separated by commas, each ${what} between ${min} and ${max}` });
          return z.NEVER;
        }
        pairs[id.toLowerCase()] = n;
      }
      return pairs;
    });
}

const dailyBudget = z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), z.coerce.number().int().min(0).optional());

export const FAIRNESS_ENV = {
  FAIRNESS: z.string().trim().toLowerCase().pipe(z.enum(['on', 'off', 'true', 'false', '1', '0'])).default('on'),
  FAIRNESS_JOB_COST_MS: z.coerce.number().int().min(1).max(60_000).default(100),
  // Priorities keep a lead of up to ~174 minutes in range (src/engine/fairness.ts, 10 ms units).
  FAIRNESS_MAX_LEAD_MS: z.coerce.number().int().min(1_000).max(10_000_000).default(3_600_000),
  FAIRNESS_WEIGHTS: pairsSchema(0.01, 1000, 'weight'),
  BUDGET_LLM_TOKENS_PER_DAY: dailyBudget,
  BUDGET_LLM_TOKENS_PER_DAY_BY_ORG: pairsSchema(0, Number.MAX_SAFE_INTEGER, 'tokens'),
  BUDGET_ROCKETREACH_LOOKUPS_PER_DAY: dailyBudget,
  BUDGET_ROCKETREACH_LOOKUPS_PER_DAY_BY_ORG: pairsSchema(0, Number.MAX_SAFE_INTEGER, 'lookups'),
};

export type FairnessEnv = z.infer<z.ZodObject<typeof FAIRNESS_ENV>>;

export function fairnessConfig(env: FairnessEnv): FairnessConfig {
  return {
    enabled: ['on', 'true', '1'].includes(env.FAIRNESS),
    jobCostMs: env.FAIRNESS_JOB_COST_MS,
    maxLeadMs: env.FAIRNESS_MAX_LEAD_MS,
    weights: env.FAIRNESS_WEIGHTS,
    budgets: budgetsOf(env),
  };
}

function budgetsOf(env: FairnessEnv): BudgetLimits {
  const perDay: BudgetLimits['perDay'] = {};
  if (env.BUDGET_LLM_TOKENS_PER_DAY !== undefined) perDay.llm_tokens = env.BUDGET_LLM_TOKENS_PER_DAY;
  if (env.BUDGET_ROCKETREACH_LOOKUPS_PER_DAY !== undefined) perDay.rocketreach_lookups = env.BUDGET_ROCKETREACH_LOOKUPS_PER_DAY;
  const byOrg: Record<string, Partial<Record<'llm_tokens' | 'rocketreach_lookups', number>>> = {};
  for (const [org, n] of Object.entries(env.BUDGET_LLM_TOKENS_PER_DAY_BY_ORG)) byOrg[org] = { ...byOrg[org], llm_tokens: n };
  for (const [org, n] of Object.entries(env.BUDGET_ROCKETREACH_LOOKUPS_PER_DAY_BY_ORG)) byOrg[org] = { ...byOrg[org], rocketreach_lookups: n };
  return { perDay, byOrg };
}
