import type { HistoryTurn, LoadedStep, RunOptions } from './run.js';
import type { StageServices } from './services.js';

/** How a stage's calls are limited across every process (the provider's rate and concurrency limits). */
export interface StageLimiter {
  /** Prefix of its settings: `<env>_RATE_LIMIT_MAX`, `<env>_RATE_LIMIT_DURATION_MS`, `<env>_MAX_CONCURRENT`. */
  readonly env: string;
  readonly max: number;
  readonly durationMs: number;
  /** Jobs of the stage running at once across every worker; default, and the setting's upper bound. */
  readonly globalConcurrency?: { readonly default: number; readonly max: number };
  /** The limiter applies only when this setting is set (the offline LLM provider calls nobody). */
  readonly onlyWith?: string;
}

/** A stage as data: what both drivers, the run store and the configuration read of it. */
export interface StageDefinitionData<N extends string = string> {
  readonly name: N;
  /** The queue that carries its jobs, also its `--queues` name. */
  readonly queue: string;
  readonly dependsOn: readonly string[];
  /**
   * Dependencies its settleLocally does without: the step may be settled at once with another
   * dependency's step before these finish (settleLocally then answers undefined when it needs them,
   * and the step waits for every dependency as usual).
   */
  readonly settlesWithout?: readonly string[];
  readonly attempts: number;
  /** Exponential backoff: delay before retry n (1-based) is baseDelayMs * 2^(n-1). */
  readonly backoff: { readonly baseDelayMs: number };
  /** Jobs at once per worker: `CONCURRENCY_<NAME>`, at most `max` (also its autoscaling bounds). */
  readonly concurrency: { readonly default: number; readonly max: number };
  /** Whether a final failure of this stage still lets the reply be produced. */
  readonly optional: boolean;
  /**
   * Whether the stage calls an external service. Its attempts are recorded when they start (each
   * is a provider call, and a long call shows as active); a local stage's step is written once,
   * when it ends.
   */
  readonly callsOut: boolean;
  readonly limiter?: StageLimiter;
  /** The most stored turns of the thread loaded with the claim (a token budget then trims them). */
  readonly historyTurns?: number;
  /** The step waits for the earlier messages of its thread to be answered. */
  readonly waitsForTurn?: true;
}

/** What a handler is given: the run, the message, the results of the stages it depends on. */
export interface StageInput<Deps extends object = Record<string, unknown>> {
  run: { id: string; orgId: string; threadId: string; options: RunOptions; messageId: string; messageSeq: number };
  content: string;
  /** Completed dependencies only. */
  results: Partial<Deps>;
  /** Loaded with the claim when the definition has `historyTurns`. */
  history: readonly HistoryTurn[];
  attempt: number;
  maxAttempts: number;
}

export interface StageSettings {
  /** The most tokens the thread's earlier turns may take in an LLM prompt (see history-gate.ts). */
  historyTokenBudget: number;
}

export interface StageContext {
  services: StageServices;
  settings: StageSettings;
  signal?: AbortSignal | undefined;
  /** The reply stage's text as it is produced (token events); only a stage with `reply` gets it. */
  onToken?: (text: string) => void;
}

/**
 * A stage: its definition and its handler. `handle` is required, so a stage without a handler
 * does not compile. Methods (not function properties) so that a definition widens to
 * AnyStageDefinition without `any`.
 */
export interface StageDefinition<N extends string = string, R = unknown, Deps extends object = Record<string, unknown>> extends StageDefinitionData<N> {
  /** Whether a run with these options includes the stage; every run does without it. */
  includedWhen?(options: RunOptions): boolean;
  /**
   * The result, when it is known without an external call: the step is then stored at once, with
   * the step that let it go, and spends no job and no limiter slot. Undefined: it needs its job.
   */
  settleLocally?(input: StageInput<Deps>, ctx: StageContext): Promise<R> | undefined;
  /** Present: the result is the run's reply, and the run finishes with it. */
  reply?(result: R, input: StageInput<Deps>): { content: string; guarded: boolean };
  handle(input: StageInput<Deps>, ctx: StageContext): Promise<R>;
}

export type AnyStageDefinition = StageDefinition<string, unknown, Record<string, unknown>>;

/** Any set of stages by name: the default catalog (catalog.ts), or one a test extends. */
export type AnyCatalog = Readonly<Record<string, AnyStageDefinition>>;

/** The stage names of a catalog. */
export type StageOf<C> = keyof C & string;

export function defineStage<N extends string, R, Deps extends object = Record<string, unknown>>(
  definition: StageDefinition<N, R, Deps>,
): StageDefinition<N, R, Deps> {
  return definition;
}

/** The handler's input, from what the store loaded for the step. */
export function stageInput<Deps extends object>(step: LoadedStep<string>): StageInput<Deps> {
  return {
    run: { id: step.runId, orgId: step.orgId, threadId: step.threadId, options: step.options, messageId: step.messageId, messageSeq: step.messageSeq },
    content: step.content,
    results: step.results as Partial<Deps>,
    history: step.history ?? [],
    attempt: step.attempts,
    maxAttempts: step.maxAttempts,
  };
}
