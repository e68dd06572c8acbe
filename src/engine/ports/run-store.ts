import type { StageName } from '../stage-names.js';
import type { AcceptOutcome, LoadedStep, NewRun, OpenRun, Run, Step, StepError, StepStates } from '../run.js';
import type { RunEventBody } from './run-events.js';

/**
 * A step's result to store; `loadedAt`: when a loaded (unclaimed) attempt started, counted with it;
 * `events`: the step's events (its `started` when no claim wrote it, its `completed`), appended
 * to the run's event log in the same statement when, and only when, the step is written.
 */
export interface StepCompletion<S extends string = StageName> {
  stage: S;
  result: unknown;
  loadedAt?: Date | undefined;
  events?: readonly RunEventBody[] | undefined;
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
  /**
   * What a local stage needs, writing nothing; undefined when the step is not in a state to run.
   * Every write of a step below, and these two reads, are fenced by the run's lease: while
   * another process holds the run (`takeOver`), a caller that does not pass that `lease` is
   * answered as if the step had finished, and writes nothing.
   */
  loadStep(runId: string, stage: S, lease?: string): Promise<LoadedStep<S> | undefined>;
  /**
   * Claims an attempt of a step that calls out, with the thread's last `historyTurns` turns.
   * `started`: the claim also appends the step's `started` event (with the attempt it claimed)
   * to the run's event log, and tells its subscribers.
   */
  claimStep(runId: string, stage: S, options?: { historyTurns?: number; lease?: string | undefined; started?: boolean }): Promise<LoadedStep<S> | undefined>;
  /**
   * Stores the results of steps of one run, each once, with the events of each step written
   * (see StepCompletion), telling the log's subscribers. `settled`: the finished steps whose
   * dependents this caller moves along — each newly finished step is in exactly one concurrent
   * caller's `settled`.
   */
  completeSteps(runId: string, steps: ReadonlyArray<StepCompletion<S>>, lease?: string): Promise<{ written: S[]; settled: S[]; states: StepStates<S> }>;
  /** A failed attempt: `retrying` while attempts remain, else `failed` (with the run's step states). */
  failAttempt(runId: string, stage: S, error: StepError, final: boolean, lease?: string): Promise<{ written: boolean; states: StepStates<S> | null }>;
  /**
   * Finishes an open run with its reply and its closing events, after `events` (what the engine
   * had not appended yet: the reply step's start, its last tokens); undefined when it was
   * finished already. Subscribers are not told (see the engine's announce).
   */
  completeWithReply(
    runId: string,
    stage: S,
    content: string,
    result: unknown,
    options?: { guarded?: boolean; lease?: string | undefined; events?: readonly RunEventBody[] | undefined },
  ): Promise<{ messageId: string } | undefined>;
  /** Ends an open run as failed or cancelled, whoever holds it; false when it was finished already. */
  finish(runId: string, status: 'failed' | 'cancelled', error?: StepError): Promise<boolean>;
  hasEarlierOpenRun(threadId: string, messageSeq: number): Promise<boolean>;
  /** The thread's oldest open run, with its step states. */
  nextOpenRun(threadId: string): Promise<OpenRun<S> | undefined>;
  /** Open runs older than the given age: candidates for the reconciler; `lease` when one was taken. */
  openRunsOlderThan(ageMs: number, limit: number): Promise<Array<{ id: string; orgId: string; driver: string; lease?: 'held' | 'expired' }>>;
  setDriver(runId: string, driver: string): Promise<void>;
  /**
   * Takes over, for `owner`, up to `limit` open runs that nobody drives in-process: those of the
   * queues with no lease, and those whose lease expired. Each is leased for `leaseMs` and marked
   * in-process; a run is taken by one caller only. Oldest message first.
   */
  takeOver(owner: string, leaseMs: number, limit: number): Promise<TakenRun<S>[]>;
  /** Extends the leases `owner` holds on these runs; answers the ones it still holds (open, not taken by another). */
  renewLeases(owner: string, runIds: readonly string[], leaseMs: number): Promise<string[]>;
  /** Gives the leases back; a run left open goes back to the queues' care (the reconciler). */
  releaseLeases(owner: string, runIds: readonly string[]): Promise<void>;
}

/** A run taken over by a process, with what its in-process driver starts from. */
export interface TakenRun<S extends string = StageName> {
  id: string;
  orgId: string;
  threadId: string;
  seq: number;
  states: StepStates<S>;
}
