import { readyStages } from './dag.js';
import type { RunStore } from './ports/run-store.js';
import type { OpenRun } from './run.js';
import type { AnyCatalog, StageOf } from './stage.js';

/**
 * The thread-order rule, once: a step marked `waitsForTurn` (the reply) goes only when every
 * earlier message of its thread has been answered, and whenever a run of the thread ends — its
 * reply, its final failure, a cancel, an abort — the thread's next run is moved on at once.
 */
export function createThreadOrder<C extends AnyCatalog>(deps: {
  catalog: C;
  runs: RunStore<StageOf<C>>;
  /** Sends the ready steps of a run to whoever drives it (see engine.ts). */
  dispatch(run: OpenRun<StageOf<C>>, stages: readonly StageOf<C>[]): Promise<void>;
}) {
  const { catalog, runs } = deps;

  /** The stages among `stages` that wait for their turn in the thread. */
  function turnBound(stages: readonly StageOf<C>[]): StageOf<C>[] {
    return stages.filter((stage) => catalog[stage]!.waitsForTurn === true);
  }

  /** Whether the run at `seq` may take its turn: no earlier run of the thread is open. */
  async function mayTakeTurn(threadId: string, seq: number): Promise<boolean> {
    return !(await runs.hasEarlierOpenRun(threadId, seq));
  }

  /** A run of the thread ended: the next one's turn-bound steps may go, if they are ready. */
  async function afterRunFinished(threadId: string): Promise<void> {
    const next = await runs.nextOpenRun(threadId);
    if (!next) return;
    const ready = turnBound(readyStages(catalog, next.states));
    if (ready.length > 0) await deps.dispatch(next, ready);
  }

  return { turnBound, mayTakeTurn, afterRunFinished };
}

export type ThreadOrder<S extends string = string> = {
  turnBound(stages: readonly S[]): S[];
  mayTakeTurn(threadId: string, seq: number): Promise<boolean>;
  afterRunFinished(threadId: string): Promise<void>;
};
