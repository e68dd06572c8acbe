import type pg from 'pg';
import type { Db } from '../client.js';
import type { RunStore } from '../../../engine/ports/run-store.js';
import type { AnyCatalog, StageOf } from '../../../engine/stage.js';
import { createAccept } from './accept.js';
import { createCompletions } from './batching.js';
import { createRecovery } from './recovery.js';
import { createStepWrites } from './steps.js';
import { createThreadOrderReads } from './thread-order.js';
import { createViews } from './views.js';

/**
 * The PostgreSQL run store, for the stages of `catalog` (their dependencies, queues and attempts
 * are read from it, never from a module-level constant). One file per subsystem: accepting runs,
 * a step's writes, the batched completions, the views, the thread-order reads, recovery.
 */
export function createRunsRepository<C extends AnyCatalog>(db: Db, pool: pg.Pool, catalog: C): RunStore<StageOf<C>> {
  type S = StageOf<C>;
  return {
    ...createAccept<S>(db, pool),
    ...createViews(db, pool, catalog),
    ...createStepWrites(pool, catalog, createCompletions(pool, catalog)),
    ...createThreadOrderReads<S>(pool),
    ...createRecovery<S>(db, pool),
  };
}

export type RunsRepository = RunStore;
