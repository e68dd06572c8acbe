import type { StageName } from './stages/types.js';

/**
 * THE pipeline: every stage, the queue that carries it, what it waits for and how it retries.
 * Both drivers read this — the in-process one (blocking endpoint, degraded mode) and the BullMQ
 * one — so a change here changes both. Plain data: no queue library is imported here.
 */
export interface StageDefinition {
  stage: StageName;
  queue: string;
  dependsOn: readonly StageName[];
  attempts: number;
  /** Exponential backoff: delay before retry n (1-based) is baseDelayMs * 2^(n-1). */
  backoff: { baseDelayMs: number };
  defaultConcurrency: number;
  /** Whether a final failure of this stage still lets the reply be produced. */
  optional: boolean;
  /**
   * Whether the stage calls an external service. Its attempts are recorded when they start (each
   * is a provider call, and a long call shows as active); a local stage's step is written once,
   * when it ends.
   */
  callsOut: boolean;
}

export const PIPELINE: Readonly<Record<StageName, StageDefinition>> = Object.freeze({
  intent: { stage: 'intent', queue: 'intent-classification', dependsOn: [], attempts: 3, backoff: { baseDelayMs: 500 }, defaultConcurrency: 10, optional: true, callsOut: false },
  security: { stage: 'security', queue: 'security-classification', dependsOn: [], attempts: 3, backoff: { baseDelayMs: 500 }, defaultConcurrency: 10, optional: true, callsOut: false },
  rag: { stage: 'rag', queue: 'rag-processing', dependsOn: [], attempts: 3, backoff: { baseDelayMs: 500 }, defaultConcurrency: 8, optional: true, callsOut: false },
  rocketreach: { stage: 'rocketreach', queue: 'rocketreach-api', dependsOn: ['intent'], attempts: 4, backoff: { baseDelayMs: 2_000 }, defaultConcurrency: 2, optional: true, callsOut: true },
  openai: { stage: 'openai', queue: 'openai-processing', dependsOn: ['intent', 'security', 'rag', 'rocketreach'], attempts: 4, backoff: { baseDelayMs: 1_000 }, defaultConcurrency: 5, optional: false, callsOut: true },
});

export const STAGE_ORDER: readonly StageName[] = ['intent', 'security', 'rag', 'rocketreach', 'openai'];

export function jobIdFor(runId: string, stage: StageName): string {
  return `${runId}.${stage}`;
}

export function backoffDelay(definition: StageDefinition, failedAttempts: number): number {
  return definition.backoff.baseDelayMs * 2 ** Math.max(0, failedAttempts - 1);
}

export type StepState = 'pending' | 'active' | 'retrying' | 'completed' | 'failed' | 'cancelled';
const TERMINAL: ReadonlySet<StepState> = new Set(['completed', 'failed', 'cancelled']);

export function isTerminal(state: StepState | undefined): boolean {
  return state !== undefined && TERMINAL.has(state);
}

/**
 * The steps of a run that may start now: not started yet, and every stage they depend on (among
 * those the run includes) has finished, one way or the other.
 */
export function readyStages(states: Partial<Record<StageName, StepState>>): StageName[] {
  return STAGE_ORDER.filter(
    (stage) =>
      states[stage] === 'pending' &&
      PIPELINE[stage].dependsOn.every((dep) => states[dep] === undefined || isTerminal(states[dep])),
  );
}

const JOB_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([a-z]+)$/;

/** The run and stage a job id names, or undefined when it is not one of ours. */
export function parseJobId(jobId: string): { runId: string; stage: StageName } | undefined {
  const match = JOB_ID.exec(jobId.toLowerCase());
  if (!match || !Object.hasOwn(PIPELINE, match[2]!)) return undefined;
  return { runId: match[1]!, stage: match[2] as StageName };
}
