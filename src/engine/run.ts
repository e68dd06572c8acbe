/**
 * The vocabulary of a run: what is accepted, what a step is, how both are seen. The run store
 * (ports/run-store.ts) speaks it; the PostgreSQL adapter maps its rows onto it. `S` is the set of
 * stage names of the catalog the run was accepted under (catalog.ts).
 */
import type { StageName } from './stage-names.js';

export type RunStatus = 'processing' | 'partial' | 'completed' | 'failed' | 'cancelled';

/** The state of one step of a run: the one name for it, in the run's step_states and in each step row. */
export type StepStatus = 'pending' | 'active' | 'retrying' | 'completed' | 'failed' | 'cancelled';

/** What is stored and shown of an error: a stable code and a message, never a stack. */
export interface StepError {
  code: string;
  message: string;
}

/** What a client may choose for a run (the comprehensive endpoint). */
export interface RunOptions {
  includeRAG?: boolean;
  includeSecurityAnalysis?: boolean;
  includeContactEnrichment?: boolean;
  contacts?: Array<{ name: string; employer?: string; title?: string }>;
}

/** Who drives a run's steps: the queue workers, or a process of its own (blocking, degraded). */
export type Driver = 'queue' | 'inline';

export interface Run {
  id: string;
  orgId: string;
  threadId: string;
  userId: string | null;
  status: RunStatus;
  source: string;
  driver: string;
  options: RunOptions;
  idempotencyKey: string | null;
  error: StepError | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface Step<S extends string = StageName> {
  runId: string;
  stage: S;
  jobId: string;
  queue: string;
  status: StepStatus;
  attempts: number;
  maxAttempts: number;
  result: unknown;
  error: StepError | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** The status of each step of a run, as the progression needs it. */
export type StepStates<S extends string = StageName> = Partial<Record<S, StepStatus>>;

export interface NewRun<S extends string = StageName> {
  /** Chosen by the caller so that job ids can be derived before anything is written. */
  id: string;
  orgId: string;
  threadId: string;
  userId: string;
  source: string;
  driver: string;
  content: string;
  options?: RunOptions;
  idempotencyKey?: string;
  /** A digest of the request that carried the key: a replay must match it. */
  idempotencyFingerprint?: string;
  /** The message starts a thread: `threadId` is the new thread's id, written with the run or not at all. */
  newThread?: { title: string };
  /** The stages the run includes; their steps start pending. */
  stages: S[];
  /** The backlog model's estimate of the run's wait at accept (ms), kept to correct later estimates by how it turned out. */
  modelWaitMs?: number;
}

export type AcceptOutcome =
  | { kind: 'created'; runId: string; createdAt: Date; messageId: string }
  | { kind: 'thread_not_found' }
  /** The idempotency key was used before for the same request: nothing new was written. */
  | { kind: 'replay'; runId: string }
  /** The idempotency key was used before for another request: nothing was written. */
  | { kind: 'idempotency_key_reused' };

/** One earlier turn of the thread, with its exchange's number. */
export interface HistoryTurn {
  role: 'user' | 'assistant';
  content: string;
  turn: number;
}

/** What a driver needs to run one stage, loaded in the same statement that claims (or reads) the step. */
export interface LoadedStep<S extends string = StageName> {
  runId: string;
  stage: S;
  attempts: number;
  maxAttempts: number;
  orgId: string;
  threadId: string;
  options: RunOptions;
  messageId: string;
  messageSeq: number;
  content: string;
  /** Results of the completed steps this one depends on, by stage. */
  results: Partial<Record<S, unknown>>;
  /** The run's step states as the claim or load saw them. */
  states: StepStates<S>;
  /** When this attempt started; set for a loaded (not claimed) step, whose completion records it. */
  loadedAt?: Date;
  /** The thread's earlier turns, oldest first (for a stage with `historyTurns`). */
  history?: HistoryTurn[];
}

/** The thread's oldest open run: the one whose reply may be produced next. */
export interface OpenRun<S extends string = StageName> {
  id: string;
  orgId: string;
  driver: string;
  states: StepStates<S>;
}
