import type { StageName } from '../catalog.js';
import type { AcceptOutcome, LoadedStep, NewRun, OpenRun, Run, Step, StepError, StepStates } from '../run.js';

/** A step's result to store; `loadedAt`: when a loaded (unclaimed) attempt started, counted with it. */
export interface StepCompletion<S extends string = StageName> {
  stage: S;
  result: unknown;
  loadedAt?: Date | undefined;
}

/**
 * What the engine needs of the store that holds runs (PostgreSQL is the truth). Every write is
 * idempotent: a step already finished is not written again, and a run stores at most one reply.
 */
export interface RunStore<S extends string = StageName> {
  /** The run, its user message and its steps — only in a thread of the organization, once per idempotency key. */
  create(run: NewRun<S>): Promise<AcceptOutcome>;
  get(orgId: string, runId: string): Promise<Run | undefined>;
  getById(runId: string): Promise<Run | undefined>;
  findByIdempotencyKey(orgId: string, key: string): Promise<Run | undefined>;
  /** The organization's run with every step (claimed or not). */
  getWithSteps(orgId: string, runId: string): Promise<{ run: Run; steps: Step<S>[] } | undefined>;
  /** Every step of the run, claimed or not, in the catalog's order. */
  steps(runId: string): Promise<Step<S>[]>;
  /** Steps by job id, only of the organization's runs; unknown ids are left out. */
  stepsByJobIds(orgId: string, jobIds: string[]): Promise<Step<S>[]>;
  userMessage(runId: string): Promise<{ id: string; seq: number; content: string; threadId: string } | undefined>;
  assistantMessage(runId: string): Promise<{ id: string; content: string } | undefined>;
  /** What a local stage needs, writing nothing; undefined when the step is not in a state to run. */
  loadStep(runId: string, stage: S): Promise<LoadedStep<S> | undefined>;
  /** Claims an attempt of a step that calls out, with the thread's last `historyTurns` turns. */
  claimStep(runId: string, stage: S, options?: { historyTurns?: number }): Promise<LoadedStep<S> | undefined>;
  /**
   * Stores the results of steps of one run, each once. `settled`: the finished steps whose
   * dependents this caller moves along — each newly finished step is in exactly one concurrent
   * caller's `settled`.
   */
  completeSteps(runId: string, steps: ReadonlyArray<StepCompletion<S>>): Promise<{ written: S[]; settled: S[]; states: StepStates<S> }>;
  /** A failed attempt: `retrying` while attempts remain, else `failed` (with the run's step states). */
  failAttempt(runId: string, stage: S, error: StepError, final: boolean): Promise<{ written: boolean; states: StepStates<S> | null }>;
  /** Finishes an open run with its reply; undefined when it was finished already. */
  completeWithReply(runId: string, stage: S, content: string, result: unknown, options?: { guarded?: boolean }): Promise<{ messageId: string } | undefined>;
  /** Ends an open run as failed or cancelled; false when it was finished already. */
  finish(runId: string, status: 'failed' | 'cancelled', error?: StepError): Promise<boolean>;
  hasEarlierOpenRun(threadId: string, messageSeq: number): Promise<boolean>;
  /** The thread's oldest open run, with its step states. */
  nextOpenRun(threadId: string): Promise<OpenRun<S> | undefined>;
  /** Open runs older than the given age: candidates for the reconciler. */
  openRunsOlderThan(ageMs: number, limit: number): Promise<Array<{ id: string; orgId: string; driver: string }>>;
  setDriver(runId: string, driver: string): Promise<void>;
}
