import { z } from 'zod';

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
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `<organization id>=<weight>` pairs separated by commas; a weight between 0.01 and 1000. */
const weightsSchema = z
  .string()
  .trim()
  .default('')
  .transform((value, ctx) => {
    const weights: Record<string, number> = {};
    for (const pair of value.split(',').map((p) => p.trim()).filter(Boolean)) {
      const [id, raw] = pair.split('=').map((p) => p.trim());
      const weight = Number(raw);
      if (!id || !UUID.test(id) || !raw || !Number.isFinite(weight) || weight < 0.01 || weight > 1000) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be <organization id>=<weight> pairs separated by commas, each weight between 0.01 and 1000' });
        return z.NEVER;
      }
      weights[id.toLowerCase()] = weight;
    }
    return weights;
  });

export const FAIRNESS_ENV = {
  FAIRNESS: z.string().trim().toLowerCase().pipe(z.enum(['on', 'off', 'true', 'false', '1', '0'])).default('on'),
  FAIRNESS_JOB_COST_MS: z.coerce.number().int().min(1).max(60_000).default(100),
  // Priorities keep a lead of up to ~174 minutes in range (src/engine/fairness.ts, 10 ms units).
  FAIRNESS_MAX_LEAD_MS: z.coerce.number().int().min(1_000).max(10_000_000).default(3_600_000),
  FAIRNESS_WEIGHTS: weightsSchema,
};

export type FairnessEnv = z.infer<z.ZodObject<typeof FAIRNESS_ENV>>;

export function fairnessConfig(env: FairnessEnv): FairnessConfig {
  return {
    enabled: ['on', 'true', '1'].includes(env.FAIRNESS),
    jobCostMs: env.FAIRNESS_JOB_COST_MS,
    maxLeadMs: env.FAIRNESS_MAX_LEAD_MS,
    weights: env.FAIRNESS_WEIGHTS,
  };
}
