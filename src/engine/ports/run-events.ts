import type { StepError } from '../run.js';

/**
 * The event log of runs: what happened to a run, in order, for live clients (SSE streams, the
 * OpenAI-compatible door) and pollers. Each run has one gap-free sequence: its first event
 * (`run` accepted) is seq 1 and every later event gets the next number. PostgreSQL holds the log
 * (src/adapters/postgres/run-events.ts); `subscribe` works across processes (a worker appends,
 * any API process serves).
 */

/** Final statuses of a run, as the `run` event and the closing `end` event carry them. */
export type FinalRunStatus = 'completed' | 'failed' | 'cancelled';

/** An event as it is appended: its body. The store adds `runId`, `seq` and `at`. */
export type RunEventBody =
  /** The run was accepted (always seq 1), then its final status (just before `end`). */
  | { type: 'run'; status: 'accepted' }
  | { type: 'run'; status: FinalRunStatus; messageId?: string; error?: StepError }
  /** A step started an attempt (1-based). */
  | { type: 'step'; stage: string; status: 'started'; attempt: number }
  /** An attempt failed and another follows after `delayMs`. */
  | { type: 'step'; stage: string; status: 'retrying'; attempt: number; delayMs: number; error: StepError }
  | { type: 'step'; stage: string; status: 'completed'; result: unknown }
  | { type: 'step'; stage: string; status: 'failed'; attempt: number; error: StepError }
  /** Text of the reply as the model produces it; the concatenation of a run's tokens since its last `reset` is its reply. */
  | { type: 'token'; stage: string; attempt: number; text: string }
  /** A new attempt of a streaming step begins: the client drops the text received so far. */
  | { type: 'reset'; stage: string; attempt: number }
  /** The closing event, after the final `run` event: nothing follows. */
  | { type: 'end'; status: FinalRunStatus };

export type RunEventType = RunEventBody['type'];

/** An event of the log. */
export type RunEvent = RunEventBody & {
  runId: string;
  /** 1, 2, 3, … per run, without gaps. */
  seq: number;
  /** When it was stored (ISO 8601). */
  at: string;
};

/** Which events: one run's, or every run's of a thread; always within one organization. */
export type RunEventTarget = { orgId: string; runId: string } | { orgId: string; threadId: string };

/**
 * Where a thread's stream is: every run of the thread whose message seq is at most `floor` has
 * been delivered to its end; a later run has been delivered up to `runs[its run seq]` (0 or
 * missing: nothing yet). See events/thread-cursor.ts for its text form (the SSE id).
 */
export interface ThreadCursor {
  floor: number;
  runs: Record<string, number>;
}

/** An event of a thread: the run's place in the thread (its message seq) comes with it. */
export type ThreadRunEvent = RunEvent & { runSeq: number };

export type Unsubscribe = () => void;

export interface RunEvents {
  /**
   * Appends events to a run's log, in order, each with the run's next seq, and tells every
   * subscriber in every process. Answers the seq of the last one (0 for none). Events of a run
   * that is not in the store are dropped (0).
   */
  append(runId: string, events: readonly RunEventBody[]): Promise<number>;
  /** The run's events after `afterSeq`, oldest first, at most `limit` (default 1000). */
  read(target: { orgId: string; runId: string }, afterSeq: number, limit?: number): Promise<RunEvent[]>;
  /** The thread's events after the cursor (every run's, each in its order; runs in message order). */
  readThread(target: { orgId: string; threadId: string }, cursor: ThreadCursor, limit?: number): Promise<ThreadRunEvent[]>;
  /**
   * Calls `onEvent` with every event after the cursor, in order, exactly once each: the stored
   * ones first, then the new ones as they are appended anywhere. A thread's subscription follows
   * every run of the thread, those accepted later included. `onError` hears of a failed read
   * (the subscription keeps trying).
   */
  subscribe(target: { orgId: string; runId: string }, afterSeq: number, onEvent: (event: RunEvent) => void, onError?: (error: unknown) => void): Unsubscribe;
  /** `onEvent` also gets the thread's cursor just after the event (what a resumed stream starts from). */
  subscribe(
    target: { orgId: string; threadId: string },
    cursor: ThreadCursor,
    onEvent: (event: ThreadRunEvent, cursor: ThreadCursor) => void,
    onError?: (error: unknown) => void,
  ): Unsubscribe;
  /** Where a new subscriber of a thread starts: the thread's open runs from their first event, and every later run. */
  threadStart(target: { orgId: string; threadId: string }): Promise<ThreadCursor>;
  /** Tells subscribers that a run has new events that were stored without `append` (the run store's folded ones). */
  announce(runId: string): Promise<void>;
}
