import type { StageName } from '../../engine/catalog.js';

/** The time ranges the JSON metrics accept, in minutes. */
export const TIME_RANGES = { '5m': 5, '15m': 15, '1h': 60, '6h': 360, '24h': 1440 } as const;
export type TimeRange = keyof typeof TIME_RANGES;

/** Percentiles in milliseconds; null when there is nothing to measure. */
export interface Percentiles {
  p50: number | null;
  p95: number | null;
}

/**
 * One stage's figures over a time range, for one organization. The range selects the runs
 * accepted in it (runs.created_at), and through them their steps.
 */
export interface StageFigures {
  stage: StageName;
  completed: number;
  failed: number;
  cancelled: number;
  /** Steps not finished yet (pending, active, retrying). */
  open: number;
  /** Attempts beyond the first, summed over the steps (a re-run after a 429 counts as one). */
  retries: number;
  /** finished_at − started_at of completed and failed steps: first start to end, retries and their backoff included. */
  processingMs: Percentiles;
  /**
   * started_at − the moment the step became ready: the latest finished_at of the steps it depends
   * on (none: the run's acceptance, i.e. the step's created_at). For the LLM stage that includes
   * waiting for the reply to an earlier message of the same thread.
   */
  waitMs: Percentiles;
}

export interface StageMinute {
  /** Start of the minute, ISO 8601. */
  minute: string;
  completed: number;
  failed: number;
}

export interface TokenFigures {
  /** LLM replies the figures were summed over. */
  replies: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** What the metrics need from the system of record; implemented over PostgreSQL in monitoring.repository.ts. */
export interface StageStatsSource {
  stages(orgId: string, rangeMinutes: number): Promise<StageFigures[]>;
  /** Completed and failed steps per stage and minute (by finished_at); minutes with none are left out. */
  stageSeries(orgId: string, rangeMinutes: number): Promise<Partial<Record<StageName, StageMinute[]>>>;
  /** Runs by status: the final ones (completed, failed, cancelled) and those still going. */
  runsByStatus(orgId: string, rangeMinutes: number): Promise<Record<string, number>>;
  /** `usage` of the stored LLM results, by the provider that answered (openai, offline, local-guard). */
  tokensByProvider(orgId: string, rangeMinutes: number): Promise<Record<string, TokenFigures>>;
}
