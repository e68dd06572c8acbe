import type { StageName } from '../../engine/catalog.js';
import { round, type HttpStats, type HttpSummary } from './http-stats.js';
import type { ProviderStats } from './provider-stats.js';
import { TIME_RANGES, type StageFigures, type StageMinute, type StageStatsSource, type TimeRange, type TokenFigures } from './stage-stats.js';

export interface MetricsReport {
  timeRange: TimeRange;
  generatedAt: string;
  from: string;
  /** This API process's own view: requests it served, every tenant's. Operators only. */
  http?: { scope: 'process'; note: string } & HttpSummary;
  /** Calls this process made to third-party providers, for every tenant. Operators only. */
  providers?: { scope: 'process'; note: string; byProvider: ReturnType<ProviderStats['summary']> };
  /** From PostgreSQL, for the caller's organization only, over the runs accepted in the range. */
  stages: {
    scope: 'organization';
    orgId: string;
    note: string;
    byStage: Partial<Record<StageName, StageFigures & { completedPerMinute: number; failedPerMinute: number; series: StageMinute[] }>>;
  };
  tokens: { scope: 'organization'; orgId: string; byProvider: Record<string, TokenFigures>; totalTokens: number };
  runs: { scope: 'organization'; orgId: string; byStatus: Record<string, number>; total: number };
}

/**
 * The JSON metrics: organization-scoped pipeline figures for everyone allowed to see them, and the
 * process-wide HTTP and provider figures (they mix every tenant's traffic) with `systemWide` only.
 */
export function createMetricsReporter(deps: { stages: readonly StageName[]; stageStats: StageStatsSource; http: HttpStats; providers: ProviderStats; now?: () => number }) {
  const now = deps.now ?? Date.now;
  return {
    /** What an organization may see of its own load: its runs by state, its steps' counts and timings. */
    async organization(orgId: string, timeRange: TimeRange): Promise<OrganizationFigures> {
      const minutes = TIME_RANGES[timeRange];
      const [stages, runs] = await Promise.all([deps.stageStats.stages(orgId, minutes), deps.stageStats.runsByStatus(orgId, minutes)]);
      const byStage: OrganizationFigures['stages'] = {};
      for (const stage of deps.stages) byStage[stage] = stages.find((s) => s.stage === stage) ?? emptyStage(stage);
      return { orgId, timeRange, runs: { byStatus: runs, total: Object.values(runs).reduce((a, b) => a + b, 0) }, stages: byStage };
    },

    async report(orgId: string, timeRange: TimeRange, options: { systemWide: boolean }): Promise<MetricsReport> {
      const minutes = TIME_RANGES[timeRange];
      const at = now();
      const [stages, series, runs, tokens] = await Promise.all([
        deps.stageStats.stages(orgId, minutes),
        deps.stageStats.stageSeries(orgId, minutes),
        deps.stageStats.runsByStatus(orgId, minutes),
        deps.stageStats.tokensByProvider(orgId, minutes),
      ]);
      const byStage: MetricsReport['stages']['byStage'] = {};
      for (const stage of deps.stages) {
        const figures = stages.find((s) => s.stage === stage) ?? emptyStage(stage);
        byStage[stage] = {
          ...figures,
          completedPerMinute: round(figures.completed / minutes, 3),
          failedPerMinute: round(figures.failed / minutes, 3),
          series: series[stage] ?? [],
        };
      }
      return {
        timeRange,
        generatedAt: new Date(at).toISOString(),
        from: new Date(at - minutes * 60_000).toISOString(),
        ...(options.systemWide
          ? {
              http: {
                scope: 'process' as const,
                note: "This API process's view: the requests it served itself (kept in memory per minute for 24 h). Other API processes keep their own; Prometheus sums them.",
                ...deps.http.summary(minutes),
              },
              providers: {
                scope: 'process' as const,
                note: 'Calls this process made to third-party providers (each HTTP request to RocketReach, each LLM completion). Worker processes count their own.',
                byProvider: deps.providers.summary(minutes),
              },
            }
          : {}),
        stages: {
          scope: 'organization',
          orgId,
          note: 'From PostgreSQL, system-wide for this organization only: the steps of the runs accepted in the time range, whichever process ran them.',
          byStage,
        },
        tokens: {
          scope: 'organization',
          orgId,
          byProvider: tokens,
          totalTokens: Object.values(tokens).reduce((sum, t) => sum + t.totalTokens, 0),
        },
        runs: { scope: 'organization', orgId, byStatus: runs, total: Object.values(runs).reduce((a, b) => a + b, 0) },
      };
    },
  };
}

export type MetricsReporter = ReturnType<typeof createMetricsReporter>;

/** One organization's runs by state and its steps by stage, over the runs accepted in a time range. */
export interface OrganizationFigures {
  orgId: string;
  timeRange: TimeRange;
  runs: { byStatus: Record<string, number>; total: number };
  stages: Partial<Record<StageName, StageFigures>>;
}

function emptyStage(stage: StageName): StageFigures {
  return { stage, completed: 0, failed: 0, cancelled: 0, open: 0, retries: 0, processingMs: { p50: null, p95: null }, waitMs: { p50: null, p95: null } };
}
