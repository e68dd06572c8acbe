import { setTimeout as delay } from 'node:timers/promises';
import { StageError } from '../../domain/errors.js';
import { isTerminal } from '../dag.js';
import type { RunEndedBus } from '../ports/run-ended-bus.js';
import type { RunStore } from '../ports/run-store.js';
import type { ProcessStep } from '../process-step.js';
import type { StepError, StepStates } from '../run.js';
import type { AnyCatalog, StageOf } from '../stage.js';

export interface InlineDriverOptions {
  maxBackoffMs?: number;
  /** How long a reply waits for the earlier messages of its thread to be answered. */
  turnTimeoutMs?: number;
  /** The longest pause between two looks of a reply waiting for its turn when a bus wakes it (default 1 s). */
  slowTurnPollMs?: number;
}

/** How a run is driven: under the lease this process took it with, and (when known) its place in its thread. */
export interface DriveOptions {
  lease?: string;
  thread?: { threadId: string; messageSeq: number };
}

/** A reply waiting for its turn checks again at least this often when a bus wakes it (a safety net), else every 250 ms. */
const SLOW_TURN_POLL_MS = 1_000;
const TURN_POLL_MS = 250;

interface DrivenRun {
  orgId: string;
  /** The lease this process holds on the run when it took it over from the queues. */
  lease: string | undefined;
  controller: AbortController;
  /** Steps sent here and not ended yet (queued, running, waiting to retry or for their turn). */
  open: Set<string>;
  /** Turn-bound steps waiting for their turn, each woken by `send`. */
  waiting: Map<string, () => void>;
  /** Turn-bound steps sent while they were asking the store, not sleeping: they ask again at once. */
  nudged: Set<string>;
  done: Promise<void>;
  settle(): void;
}

/**
 * The in-process driver: runs the steps of the runs this process drives (the blocking endpoint,
 * degraded mode) through the same step processor as the queue workers, with each stage's
 * attempts and backoff. A turn-bound step whose turn has not come waits here: it is woken when
 * the thread's earlier run ends in this process, and meanwhile checks again with a backoff (the
 * earlier run may end in another process).
 */
export function createInlineDriver<C extends AnyCatalog>(deps: {
  catalog: C;
  runs: RunStore<StageOf<C>>;
  /** Bound late: the processor moves runs on through this driver. */
  processStep: () => ProcessStep<StageOf<C>>;
  /** A run driven here ended (its reply, or an abort): the thread's next run goes. */
  afterRunFinished(threadId: string): Promise<void>;
  onError(error: unknown, runId: string): void;
  /** Wakes a reply waiting for its turn when a run of its thread ended in another process. */
  bus?: RunEndedBus | undefined;
  options?: InlineDriverOptions;
}) {
  type S = StageOf<C>;
  const { catalog, runs } = deps;
  const maxBackoffMs = deps.options?.maxBackoffMs ?? 10_000;
  const turnTimeoutMs = deps.options?.turnTimeoutMs ?? 120_000;
  const driven = new Map<string, DrivenRun>();
  const moving = new Set<Promise<void>>();

  /**
   * Drives a run here until none of its steps is left to run; resolves then. `states`: the run's
   * step states (its unfinished steps whose dependencies have finished start at once). An abort
   * (`signal`, or cancel) stops every step, and the run is ended as cancelled.
   */
  function drive(runId: string, orgId: string, states: StepStates<S>, signal?: AbortSignal, options: DriveOptions = {}): Promise<void> {
    const existing = driven.get(runId);
    if (existing) return existing.done;
    const controller = new AbortController();
    if (signal) {
      if (signal.aborted) controller.abort(signal.reason);
      else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
    }
    let settle = () => {};
    const done = new Promise<void>((resolve) => (settle = resolve));
    const run: DrivenRun = { orgId, lease: options.lease, controller, open: new Set(), waiting: new Map(), nudged: new Set(), done, settle };
    driven.set(runId, run);
    controller.signal.addEventListener('abort', () => {
      for (const wake of run.waiting.values()) wake();
    });
    const of = states as Partial<Record<string, StepStates[keyof StepStates]>>;
    const startable = (Object.keys(states) as S[]).filter(
      (stage) => !isTerminal(of[stage]) && catalog[stage]!.dependsOn.every((dep) => of[dep] === undefined || isTerminal(of[dep])),
    );
    for (const stage of startable) {
      // A run picked up part-way (taken over, re-driven) may have its reply ready at once: it still waits for its turn.
      if (catalog[stage]!.waitsForTurn) startInTurn(runId, run, stage, options.thread);
      else start(runId, run, stage);
    }
    if (run.open.size === 0) void end(runId, run);
    return done;
  }

  function startInTurn(runId: string, run: DrivenRun, stage: S, known: { threadId: string; messageSeq: number } | undefined): void {
    run.open.add(stage);
    void (async () => {
      try {
        const message = known ? undefined : await runs.userMessage(runId);
        const thread = known ?? (message ? { threadId: message.threadId, messageSeq: message.seq } : undefined);
        if (!thread || (await waitForTurn(run, stage, thread))) return attempt(runId, run, stage, 0);
      } catch (error) {
        deps.onError(error, runId);
      }
      close(runId, run, stage);
    })();
  }

  /** Steps of a run driven here, ready now; a step already here is not run twice (a waiting one is woken). */
  async function send(runId: string, stages: readonly S[]): Promise<void> {
    const run = driven.get(runId);
    if (!run) return;
    for (const stage of stages) {
      const wake = run.waiting.get(stage);
      if (wake) wake();
      else if (!run.open.has(stage)) start(runId, run, stage);
      else run.nudged.add(stage);
    }
  }

  /** Turn-bound steps whose turn has not come: they wait here, then run. */
  function notYourTurn(runId: string, stages: readonly S[], thread: { threadId: string; messageSeq: number }): void {
    const run = driven.get(runId);
    if (!run) return;
    for (const stage of stages) {
      if (run.open.has(stage)) continue;
      run.open.add(stage);
      void waitForTurn(run, stage, thread).then((go) => (go ? attempt(runId, run, stage, 0) : close(runId, run, stage)));
    }
  }

  async function waitForTurn(run: DrivenRun, stage: S, thread: { threadId: string; messageSeq: number }): Promise<boolean> {
    const deadline = Date.now() + turnTimeoutMs;
    // A run of the thread that ends elsewhere wakes this wait through the bus; one that ends while
    // the store is being asked is not missed (`pinged`).
    let pinged = false;
    const unsubscribe = deps.bus?.onRunEnded(thread.threadId, () => {
      pinged = true;
      run.waiting.get(stage)?.();
    });
    const cap = deps.bus ? (deps.options?.slowTurnPollMs ?? SLOW_TURN_POLL_MS) : TURN_POLL_MS;
    try {
      for (let pause = 10; ; pause = Math.min(pause * 2, cap)) {
        if (run.controller.signal.aborted) return false;
        if (run.nudged.delete(stage)) pinged = true;
        if (!pinged) {
          const woken = new Promise<void>((resolve) => run.waiting.set(stage, resolve));
          await Promise.race([woken, delay(pause, undefined, { ref: false })]);
          run.waiting.delete(stage);
        }
        pinged = false;
        if (run.controller.signal.aborted) return false;
        try {
          if (!(await runs.hasEarlierOpenRun(thread.threadId, thread.messageSeq))) return true;
        } catch {
          // The store is unreachable: ask again after the next pause.
        }
        // Given up on an earlier run that never ends: the reply goes out of order rather than never.
        if (Date.now() > deadline) return true;
      }
    } finally {
      unsubscribe?.();
    }
  }

  function start(runId: string, run: DrivenRun, stage: S): void {
    run.open.add(stage);
    void attempt(runId, run, stage, 0);
  }

  async function attempt(runId: string, run: DrivenRun, stage: S, attemptsMade: number): Promise<void> {
    const signal = run.controller.signal;
    for (let made = attemptsMade; !signal.aborted; made++) {
      try {
        const moved = { id: runId, orgId: run.orgId, driver: 'inline' as const, ...(run.lease ? { lease: run.lease } : {}) };
        const verdict = await deps.processStep()({ run: moved, stage, attemptsMade: made }, signal, {
          canPause: false,
          moveThreadOn: 'caller',
        });
        if (verdict.kind === 'done' && verdict.endedThread) moveThreadOn(runId, verdict.endedThread);
        if (verdict.kind !== 'retry') break;
        await delay(Math.min(maxBackoffMs, verdict.delayMs), undefined, { signal });
      } catch (error) {
        if (!signal.aborted) deps.onError(error, runId);
        break;
      }
    }
    close(runId, run, stage);
  }

  /** Moves the thread on after the run's own waiter has its answer; shutdown still waits for it. */
  function moveThreadOn(runId: string, threadId: string): void {
    const move = deps
      .afterRunFinished(threadId)
      .catch((error: unknown) => deps.onError(error, runId))
      .finally(() => moving.delete(move));
    moving.add(move);
  }

  function close(runId: string, run: DrivenRun, stage: S): void {
    run.open.delete(stage);
    if (run.open.size === 0) void end(runId, run);
  }

  async function end(runId: string, run: DrivenRun): Promise<void> {
    try {
      // Nothing is left open behind an abort: the thread's next message must not wait for this one.
      const signal = run.controller.signal;
      if (signal.aborted && (await runs.finish(runId, 'cancelled', abortInfo(signal.reason)))) {
        const message = await runs.userMessage(runId);
        if (message) await deps.afterRunFinished(message.threadId);
      }
    } catch (error) {
      deps.onError(error, runId);
    } finally {
      driven.delete(runId);
      run.settle();
    }
  }

  return {
    drive,
    send,
    notYourTurn,
    /** Whether this process drives the run. */
    holds: (runId: string) => driven.has(runId),
    /** Stops a run driven here; it ends as cancelled unless it has ended already. */
    abort(runId: string, reason: unknown): void {
      driven.get(runId)?.controller.abort(reason);
    },
    /** Resolves when every run driven here has ended (graceful shutdown). */
    async drain(): Promise<void> {
      await Promise.all([...driven.values()].map((run) => run.done));
      await Promise.all([...moving]);
    },
  };
}

export type InlineDriver<S extends string = string> = {
  drive(runId: string, orgId: string, states: StepStates<S>, signal?: AbortSignal, options?: DriveOptions): Promise<void>;
  send(runId: string, stages: readonly S[]): Promise<void>;
  notYourTurn(runId: string, stages: readonly S[], thread: { threadId: string; messageSeq: number }): void;
  holds(runId: string): boolean;
  abort(runId: string, reason: unknown): void;
  drain(): Promise<void>;
};

/** What an aborted run records: the code of a StageError given as the abort's reason, or `aborted`. */
function abortInfo(reason: unknown): StepError {
  if (reason instanceof StageError) return { code: reason.code, message: reason.message };
  return { code: 'aborted', message: 'the run was aborted' };
}
